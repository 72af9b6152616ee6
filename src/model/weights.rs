//! Where a model's weights live, and how named tensors come out of them.
//!
//! Both formats are checked before candle parses them (magic bytes, header bounds, every tensor's
//! extent inside the file), and every tensor's shape is checked against the config before it is
//! read, so a bad file fails with its path and the exact problem instead of a panic or garbage.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use candle_core::quantized::{gguf_file, GgmlDType};
use candle_core::safetensors::MmapedSafetensors;
use candle_core::{DType, Device, Tensor};
use serde::Deserialize;

use super::config::ModelConfig;
use super::kernels::matmul::Weights;
use super::random::RandomTensors;

/// The files a model is loaded from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WeightsSource {
    /// A Hugging Face checkpoint: `config.json` and one or more safetensors shards.
    Safetensors { config: PathBuf, files: Vec<PathBuf> },
    /// A single GGUF file: shape in its metadata, weights usually quantized.
    Gguf(PathBuf),
}

const SHARD_INDEX: &str = "model.safetensors.index.json";

impl WeightsSource {
    /// Works out the source from a path: a `.gguf` file, a `.safetensors` file or shard index
    /// (with `config.json` beside it), or a directory holding either.
    pub fn from_path(path: &Path) -> Result<Self> {
        if path.is_dir() {
            return Self::from_dir(path);
        }
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let dir = path.parent().unwrap_or(Path::new("."));
        if name.ends_with(".gguf") {
            Ok(Self::Gguf(path.to_path_buf()))
        } else if name.ends_with(".index.json") {
            Ok(Self::Safetensors { config: dir.join("config.json"), files: shards_from_index(path)? })
        } else if name.ends_with(".safetensors") {
            Ok(Self::Safetensors { config: dir.join("config.json"), files: vec![path.to_path_buf()] })
        } else if !path.exists() {
            bail!("model path {} does not exist", path.display())
        } else {
            bail!("{} is not a .gguf or .safetensors file or a model directory", path.display())
        }
    }

    fn from_dir(dir: &Path) -> Result<Self> {
        let config = dir.join("config.json");
        let index = dir.join(SHARD_INDEX);
        if index.is_file() {
            return Ok(Self::Safetensors { config, files: shards_from_index(&index)? });
        }
        let single = dir.join("model.safetensors");
        if single.is_file() {
            return Ok(Self::Safetensors { config, files: vec![single] });
        }
        let entries = std::fs::read_dir(dir).with_context(|| format!("cannot list model directory {}", dir.display()))?;
        let mut ggufs = Vec::new();
        for entry in entries {
            let path = entry.with_context(|| format!("cannot list {}", dir.display()))?.path();
            if path.extension().is_some_and(|e| e == "gguf") {
                ggufs.push(path);
            }
        }
        ggufs.sort();
        match ggufs.len() {
            1 => Ok(Self::Gguf(ggufs.remove(0))),
            0 => bail!("{} holds no model: expected {SHARD_INDEX}, model.safetensors or one .gguf file", dir.display()),
            n => bail!("{} holds {n} .gguf files; name the one to load", dir.display()),
        }
    }

    /// The path to show in messages: the GGUF file, or the checkpoint's directory.
    pub fn display_path(&self) -> &Path {
        match self {
            Self::Gguf(path) => path,
            Self::Safetensors { config, .. } => config.parent().unwrap_or(config),
        }
    }
}

#[derive(Deserialize)]
struct ShardIndex {
    weight_map: HashMap<String, String>,
}

/// The shard files named by a `model.safetensors.index.json`, each once, in name order.
fn shards_from_index(index: &Path) -> Result<Vec<PathBuf>> {
    let text = std::fs::read_to_string(index).with_context(|| format!("cannot read shard index {}", index.display()))?;
    let parsed: ShardIndex = serde_json::from_str(&text).with_context(|| format!("invalid shard index {}", index.display()))?;
    let dir = index.parent().unwrap_or(Path::new("."));
    let mut names: Vec<&String> = parsed.weight_map.values().collect();
    names.sort();
    names.dedup();
    if names.is_empty() {
        bail!("shard index {} lists no tensors", index.display());
    }
    Ok(names.into_iter().map(|name| dir.join(name)).collect())
}

/// A tensor inside one transformer block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LayerTensor {
    AttnNorm,
    Q,
    K,
    V,
    O,
    QBias,
    KBias,
    VBias,
    QNorm,
    KNorm,
    MlpNorm,
    Gate,
    Up,
    Down,
}

/// A tensor the decoder needs, independent of how a format names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TensorId {
    Embedding,
    FinalNorm,
    LmHead,
    /// GGUF only: Llama 3 RoPE frequency divisors.
    RopeFreqs,
    Layer(usize, LayerTensor),
}

impl TensorId {
    fn hf_name(self) -> String {
        use LayerTensor as L;
        let (i, suffix) = match self {
            TensorId::Embedding => return "model.embed_tokens.weight".into(),
            TensorId::FinalNorm => return "model.norm.weight".into(),
            TensorId::LmHead => return "lm_head.weight".into(),
            TensorId::RopeFreqs => return "rope_freqs.weight".into(),
            TensorId::Layer(i, t) => (
                i,
                match t {
                    L::AttnNorm => "input_layernorm.weight",
                    L::Q => "self_attn.q_proj.weight",
                    L::K => "self_attn.k_proj.weight",
                    L::V => "self_attn.v_proj.weight",
                    L::O => "self_attn.o_proj.weight",
                    L::QBias => "self_attn.q_proj.bias",
                    L::KBias => "self_attn.k_proj.bias",
                    L::VBias => "self_attn.v_proj.bias",
                    L::QNorm => "self_attn.q_norm.weight",
                    L::KNorm => "self_attn.k_norm.weight",
                    L::MlpNorm => "post_attention_layernorm.weight",
                    L::Gate => "mlp.gate_proj.weight",
                    L::Up => "mlp.up_proj.weight",
                    L::Down => "mlp.down_proj.weight",
                },
            ),
        };
        format!("model.layers.{i}.{suffix}")
    }

    pub(crate) fn gguf_name(self) -> String {
        use LayerTensor as L;
        let (i, suffix) = match self {
            TensorId::Embedding => return "token_embd.weight".into(),
            TensorId::FinalNorm => return "output_norm.weight".into(),
            TensorId::LmHead => return "output.weight".into(),
            TensorId::RopeFreqs => return "rope_freqs.weight".into(),
            TensorId::Layer(i, t) => (
                i,
                match t {
                    L::AttnNorm => "attn_norm.weight",
                    L::Q => "attn_q.weight",
                    L::K => "attn_k.weight",
                    L::V => "attn_v.weight",
                    L::O => "attn_output.weight",
                    L::QBias => "attn_q.bias",
                    L::KBias => "attn_k.bias",
                    L::VBias => "attn_v.bias",
                    L::QNorm => "attn_q_norm.weight",
                    L::KNorm => "attn_k_norm.weight",
                    L::MlpNorm => "ffn_norm.weight",
                    L::Gate => "ffn_gate.weight",
                    L::Up => "ffn_up.weight",
                    L::Down => "ffn_down.weight",
                },
            ),
        };
        format!("blk.{i}.{suffix}")
    }
}

/// An opened weights source: the model's shape and its tensors.
pub(crate) struct OpenedWeights {
    pub config: ModelConfig,
    pub tensors: TensorFile,
}

impl OpenedWeights {
    pub(crate) fn open(source: &WeightsSource) -> Result<Self> {
        match source {
            WeightsSource::Safetensors { config, files } => {
                let parsed = ModelConfig::from_hf_json(config)?;
                let tensors = SafetensorsFiles::open(files, config)?;
                Ok(Self { config: parsed, tensors: TensorFile::Safetensors(tensors) })
            }
            WeightsSource::Gguf(path) => {
                let file = GgufFile::open(path)?;
                let config =
                    ModelConfig::from_gguf(&file.content).with_context(|| format!("invalid model metadata in {}", path.display()))?;
                Ok(Self { config, tensors: TensorFile::Gguf(file) })
            }
        }
    }
}

/// Named tensors in either format, or made up in a known shape (`bench --random-weights`).
pub(crate) enum TensorFile {
    Safetensors(SafetensorsFiles),
    Gguf(GgufFile),
    Random(RandomTensors),
}

/// A loaded weight matrix and what it cost.
pub(crate) struct Matrix {
    pub weight: Weights,
    /// How the file stores it ("Q4_1", "BF16", ...), for the model summary.
    pub stored_as: String,
    pub elements: usize,
}

impl TensorFile {
    pub(crate) fn contains(&self, id: TensorId) -> bool {
        match self {
            TensorFile::Safetensors(st) => st.shard_of.contains_key(&id.hf_name()),
            TensorFile::Gguf(g) => g.content.tensor_infos.contains_key(&id.gguf_name()),
            TensorFile::Random(r) => r.contains(id),
        }
    }

    /// Whether the file follows GGUF's layout, whose Llama query and key rows are permuted for
    /// interleaved RoPE. Random weights have no trained layout to honour.
    pub(crate) fn is_gguf(&self) -> bool {
        matches!(self, TensorFile::Gguf(_))
    }

    /// A `[rows, cols]` weight for `x @ W^T`, in host memory. Quantized GGUF weights stay
    /// quantized (one copy, in their own block type); float weights are kept as `dtype`, or as
    /// stored where it is `None`.
    pub(crate) fn matrix(&mut self, id: TensorId, rows: usize, cols: usize, dtype: Option<DType>) -> Result<Matrix> {
        let (weight, stored_as) = match self {
            TensorFile::Safetensors(st) => {
                let name = id.hf_name();
                let (tensor, stored) = st.load(&name, &[rows, cols], DType::F32)?;
                let values =
                    tensor.flatten_all().and_then(|t| t.to_vec1::<f32>()).with_context(|| format!("cannot read tensor `{name}`"))?;
                (Weights::dense(values, rows, cols, dtype.unwrap_or(stored))?, format!("{stored:?}"))
            }
            TensorFile::Gguf(g) => {
                let name = id.gguf_name();
                let q = g.read(&name, &[rows, cols])?;
                let stored_as = format!("{:?}", q.dtype());
                let weight = match (q.dtype(), dtype) {
                    (GgmlDType::F32 | GgmlDType::F16 | GgmlDType::BF16, Some(dtype)) => {
                        let values = q.dequantize(&Device::Cpu).and_then(|t| t.flatten_all()?.to_vec1::<f32>());
                        let values = g.context(values, &name)?;
                        Weights::dense(values, rows, cols, dtype)?
                    }
                    (other, _) => {
                        let bytes = g.context(q.data(), &name)?;
                        Weights::ggml(other, &bytes, rows, cols).with_context(|| format!("{}: tensor `{name}`", g.path.display()))?
                    }
                };
                (weight, stored_as)
            }
            TensorFile::Random(r) => return r.matrix(id, rows, cols, dtype),
        };
        Ok(Matrix { weight, stored_as, elements: rows * cols })
    }

    /// A 1-D tensor (norm weight, bias, frequency factors) as f32.
    pub(crate) fn vector(&mut self, id: TensorId, len: usize) -> Result<Vec<f32>> {
        match self {
            TensorFile::Safetensors(st) => {
                let name = id.hf_name();
                let (tensor, _) = st.load(&name, &[len], DType::F32)?;
                tensor.to_vec1::<f32>().with_context(|| format!("cannot read tensor `{name}`"))
            }
            TensorFile::Gguf(g) => {
                let name = id.gguf_name();
                let q = g.read(&name, &[len])?;
                let values = q.dequantize(&Device::Cpu).and_then(|t| t.to_vec1::<f32>());
                g.context(values, &name)
            }
            TensorFile::Random(r) => Ok(r.vector(id, len)),
        }
    }
}

/// One or more safetensors shards, memory-mapped while the model loads.
pub(crate) struct SafetensorsFiles {
    shards: Vec<(PathBuf, MmapedSafetensors)>,
    shard_of: HashMap<String, usize>,
    config_path: PathBuf,
}

impl SafetensorsFiles {
    fn open(files: &[PathBuf], config_path: &Path) -> Result<Self> {
        if files.is_empty() {
            bail!("no safetensors files given for {}", config_path.display());
        }
        let mut shards = Vec::with_capacity(files.len());
        let mut shard_of = HashMap::new();
        for (index, path) in files.iter().enumerate() {
            check_safetensors_header(path)?;
            // SAFETY: the map is only read while loading and dropped afterwards; like every
            // memory-mapped loader, this assumes nobody truncates the file meanwhile.
            let mapped = unsafe { MmapedSafetensors::new(path) }
                .with_context(|| format!("{}: corrupt or truncated safetensors file", path.display()))?;
            for (name, _) in mapped.tensors() {
                shard_of.insert(name, index);
            }
            shards.push((path.clone(), mapped));
        }
        Ok(Self { shards, shard_of, config_path: config_path.to_path_buf() })
    }

    /// Loads `name`, checking its shape against `shape` first; returns it in `dtype` together
    /// with the dtype the file stores.
    fn load(&self, name: &str, shape: &[usize], dtype: DType) -> Result<(Tensor, DType)> {
        let Some(&index) = self.shard_of.get(name) else {
            let files: Vec<String> = self.shards.iter().map(|(p, _)| p.display().to_string()).collect();
            bail!("tensor `{name}` is missing from {}", files.join(", "));
        };
        let (path, mapped) = &self.shards[index];
        let view = mapped.get(name).with_context(|| format!("{}: cannot read tensor `{name}`", path.display()))?;
        if view.shape() != shape {
            bail!("{}: tensor `{name}` has shape {:?} but {} implies {shape:?}", path.display(), view.shape(), self.config_path.display());
        }
        let stored = DType::try_from(view.dtype()).ok().filter(|d| matches!(d, DType::F32 | DType::F16 | DType::BF16));
        let Some(stored) = stored else {
            bail!("{}: tensor `{name}` has dtype {:?}; expected F32, F16 or BF16", path.display(), view.dtype());
        };
        let tensor = mapped
            .load(name, &Device::Cpu)
            .and_then(|t| t.to_dtype(dtype))
            .with_context(|| format!("{}: cannot load tensor `{name}`", path.display()))?;
        Ok((tensor, stored))
    }
}

/// Catches non-safetensors input before the parser sees it: the file must start with an 8-byte
/// header length that fits in the file, followed by a JSON object.
fn check_safetensors_header(path: &Path) -> Result<()> {
    let mut file = File::open(path).with_context(|| format!("cannot open weights file {}", path.display()))?;
    let len = file.metadata().with_context(|| format!("cannot stat {}", path.display()))?.len();
    let mut head = [0u8; 9];
    if len < head.len() as u64 {
        bail!("{}: not a safetensors file (only {len} bytes)", path.display());
    }
    file.read_exact(&mut head).with_context(|| format!("cannot read {}", path.display()))?;
    let mut size = [0u8; 8];
    size.copy_from_slice(&head[..8]);
    let header_len = u64::from_le_bytes(size);
    if header_len > len - 8 || head[8] != b'{' {
        bail!("{}: not a safetensors file or truncated (header of {header_len} bytes in a {len}-byte file)", path.display());
    }
    Ok(())
}

/// A GGUF file: its parsed header and a reader for tensor data.
pub(crate) struct GgufFile {
    path: PathBuf,
    content: gguf_file::Content,
    reader: BufReader<File>,
}

impl GgufFile {
    fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).with_context(|| format!("cannot open GGUF file {}", path.display()))?;
        let file_len = file.metadata().with_context(|| format!("cannot stat {}", path.display()))?.len();
        let mut reader = BufReader::new(file);
        let mut magic = [0u8; 4];
        if file_len < 4 {
            bail!("{}: not a GGUF file (only {file_len} bytes)", path.display());
        }
        reader.read_exact(&mut magic).with_context(|| format!("cannot read {}", path.display()))?;
        if &magic != b"GGUF" {
            bail!("{}: not a GGUF file (wrong magic number {magic:02x?}, expected \"GGUF\")", path.display());
        }
        reader.seek(SeekFrom::Start(0)).with_context(|| format!("cannot read {}", path.display()))?;
        let content =
            gguf_file::Content::read(&mut reader).with_context(|| format!("{}: corrupt or truncated GGUF header", path.display()))?;
        check_gguf_extents(&content, file_len).with_context(|| format!("{}: corrupt GGUF file", path.display()))?;
        Ok(Self { path: path.to_path_buf(), content, reader })
    }

    /// Reads tensor `name` into host memory, checking its shape first.
    fn read(&mut self, name: &str, shape: &[usize]) -> Result<candle_core::quantized::QTensor> {
        let Some(info) = self.content.tensor_infos.get(name) else {
            bail!("{}: tensor `{name}` is missing", self.path.display());
        };
        if info.shape.dims() != shape {
            bail!("{}: tensor `{name}` has shape {:?} but the metadata implies {shape:?}", self.path.display(), info.shape.dims());
        }
        self.content
            .tensor(&mut self.reader, name, &Device::Cpu)
            .with_context(|| format!("{}: cannot read tensor `{name}`", self.path.display()))
    }

    /// Names this file and `name` on a failure to decode the tensor.
    fn context<T>(&self, result: candle_core::Result<T>, name: &str) -> Result<T> {
        result.with_context(|| format!("{}: cannot decode tensor `{name}`", self.path.display()))
    }
}

/// Checks that every tensor's data lies inside the file and fills whole quantization blocks, so
/// a truncated download fails here, naming the first tensor it cuts.
fn check_gguf_extents(content: &gguf_file::Content, file_len: u64) -> Result<()> {
    let mut infos: Vec<(&String, &gguf_file::TensorInfo)> = content.tensor_infos.iter().collect();
    infos.sort_by_key(|(_, info)| info.offset);
    for (name, info) in infos {
        let dims = info.shape.dims();
        let elements = dims.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d as u64));
        let Some(elements) = elements else {
            bail!("tensor `{name}` has an impossible shape {dims:?}");
        };
        let block = info.ggml_dtype.block_size() as u64;
        let row = dims.last().copied().unwrap_or(1) as u64;
        if !row.is_multiple_of(block) {
            bail!("tensor `{name}`: rows of {row} values do not fill {:?} blocks of {block}", info.ggml_dtype);
        }
        let bytes = (elements / block).checked_mul(info.ggml_dtype.type_size() as u64);
        let end = bytes.and_then(|b| content.tensor_data_offset.checked_add(info.offset)?.checked_add(b));
        match end {
            Some(end) if end <= file_len => {}
            Some(end) => bail!("file is truncated: tensor `{name}` ends at byte {end} but the file has {file_len} bytes"),
            None => bail!("tensor `{name}` has an impossible offset {}", info.offset),
        }
    }
    Ok(())
}
