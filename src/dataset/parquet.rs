//! `dataset.sharegpt.parquet` and `dataset.openai.parquet`: the dataset JSONL files as Parquet,
//! which Hugging Face `datasets`, pandas and pyarrow read without a loader script.
//!
//! The schema is fixed, whatever the records hold, so that every file of every run has the
//! same columns and shards concatenate. Where the shape varies from record to record (tool
//! schemas, call arguments, metadata) the column holds the JSON text, as the OpenAI API sends
//! arguments; everything else is typed:
//!
//! ```text
//! sharegpt: conversations list<struct<from: string, value: string>>, system string,
//!           tools string (JSON list), metadata string (JSON object)
//! openai:   messages list<struct<role: string, content: string,
//!                                tool_calls: list<struct<id, type, function: struct<name, arguments>>> (null when none),
//!                                tool_call_id: string (null when none)>>,
//!           tools string (JSON list), metadata string (JSON object)
//! ```
//!
//! Records are read from the JSONL file line by line and written in row groups, so a large run
//! never sits in memory whole; the file is written beside its final name and renamed, so it is
//! never seen half-written. A run with no records still gets a file with the schema and no rows.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use arrow_array::{Array, ArrayRef, ListArray, RecordBatch, StringArray, StructArray};
use arrow_buffer::{NullBuffer, OffsetBuffer};
use arrow_schema::{DataType, Field, Fields, Schema, SchemaRef};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::formats::Layout;
use super::openai::OpenAiMessage;
use super::sharegpt::Turn;

/// Rows per row group (and per batch held in memory).
const BATCH: usize = 512;

fn text(name: &str, nullable: bool) -> Field {
    Field::new(name, DataType::Utf8, nullable)
}

fn list_of(fields: Fields) -> DataType {
    DataType::List(Arc::new(Field::new_list_field(DataType::Struct(fields), false)))
}

fn turn_fields() -> Fields {
    Fields::from(vec![text("from", false), text("value", false)])
}

fn function_fields() -> Fields {
    Fields::from(vec![text("name", false), text("arguments", false)])
}

fn call_fields() -> Fields {
    Fields::from(vec![text("id", false), text("type", false), Field::new("function", DataType::Struct(function_fields()), false)])
}

fn message_fields() -> Fields {
    Fields::from(vec![
        text("role", false),
        text("content", false),
        Field::new("tool_calls", list_of(call_fields()), true),
        text("tool_call_id", true),
    ])
}

/// The fixed schema of a layout's Parquet file.
pub fn schema(layout: Layout) -> SchemaRef {
    let fields = match layout {
        Layout::ShareGpt => vec![
            Field::new("conversations", list_of(turn_fields()), false),
            text("system", false),
            text("tools", false),
            text("metadata", false),
        ],
        Layout::OpenAi => vec![Field::new("messages", list_of(message_fields()), false), text("tools", false), text("metadata", false)],
    };
    Arc::new(Schema::new(fields))
}

/// A ShareGPT record as the JSONL file holds it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ShareGptRecord {
    conversations: Vec<Turn>,
    system: String,
    /// Already a JSON string in the ShareGPT layout.
    tools: String,
    metadata: Value,
}

/// An OpenAI record as the JSONL file holds it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OpenAiRecord {
    messages: Vec<OpenAiMessage>,
    tools: Vec<Value>,
    metadata: Value,
}

/// Column values of up to [`BATCH`] records.
#[derive(Default)]
struct Columns {
    /// Per record: its turns or messages.
    items: Vec<usize>,
    // ShareGPT turns.
    from: Vec<String>,
    value: Vec<String>,
    system: Vec<String>,
    // OpenAI messages and their calls.
    role: Vec<String>,
    content: Vec<String>,
    /// Per message: its calls, `None` when it has none.
    calls: Vec<Option<usize>>,
    tool_call_id: Vec<Option<String>>,
    call_id: Vec<String>,
    call_type: Vec<String>,
    call_name: Vec<String>,
    call_arguments: Vec<String>,
    // Both.
    tools: Vec<String>,
    metadata: Vec<String>,
}

fn strings(values: Vec<String>) -> ArrayRef {
    Arc::new(StringArray::from(values))
}

fn optional_strings(values: Vec<Option<String>>) -> ArrayRef {
    Arc::new(StringArray::from(values))
}

fn structs(fields: Fields, arrays: Vec<ArrayRef>) -> Result<ArrayRef> {
    Ok(Arc::new(StructArray::try_new(fields, arrays, None)?))
}

fn list(fields: Fields, lengths: impl IntoIterator<Item = usize>, values: ArrayRef, nulls: Option<NullBuffer>) -> Result<ArrayRef> {
    let item = Arc::new(Field::new_list_field(DataType::Struct(fields), false));
    Ok(Arc::new(ListArray::try_new(item, OffsetBuffer::from_lengths(lengths), values, nulls)?))
}

impl Columns {
    fn len(&self) -> usize {
        self.items.len()
    }

    fn push(&mut self, layout: Layout, line: &str) -> Result<()> {
        match layout {
            Layout::ShareGpt => {
                let r: ShareGptRecord = serde_json::from_str(line)?;
                self.items.push(r.conversations.len());
                for turn in r.conversations {
                    self.from.push(turn.from);
                    self.value.push(turn.value);
                }
                self.system.push(r.system);
                self.tools.push(r.tools);
                self.metadata.push(serde_json::to_string(&r.metadata)?);
            }
            Layout::OpenAi => {
                let r: OpenAiRecord = serde_json::from_str(line)?;
                self.items.push(r.messages.len());
                for m in r.messages {
                    self.role.push(m.role);
                    self.content.push(m.content);
                    self.calls.push((!m.tool_calls.is_empty()).then_some(m.tool_calls.len()));
                    self.tool_call_id.push(m.tool_call_id);
                    for call in m.tool_calls {
                        self.call_id.push(call.id);
                        self.call_type.push(call.kind);
                        self.call_name.push(call.function.name);
                        self.call_arguments.push(call.function.arguments);
                    }
                }
                self.tools.push(serde_json::to_string(&r.tools)?);
                self.metadata.push(serde_json::to_string(&r.metadata)?);
            }
        }
        Ok(())
    }

    /// The batch, leaving `self` empty.
    fn take(&mut self, layout: Layout, schema: &SchemaRef) -> Result<RecordBatch> {
        let c = std::mem::take(self);
        let columns = match layout {
            Layout::ShareGpt => {
                let turns = structs(turn_fields(), vec![strings(c.from), strings(c.value)])?;
                vec![list(turn_fields(), c.items, turns, None)?, strings(c.system), strings(c.tools), strings(c.metadata)]
            }
            Layout::OpenAi => {
                let function = structs(function_fields(), vec![strings(c.call_name), strings(c.call_arguments)])?;
                let calls = structs(call_fields(), vec![strings(c.call_id), strings(c.call_type), function])?;
                let present = NullBuffer::from(c.calls.iter().map(Option::is_some).collect::<Vec<bool>>());
                let lengths = c.calls.iter().map(|n| n.unwrap_or(0));
                let tool_calls = list(call_fields(), lengths, calls, Some(present))?;
                let messages =
                    structs(message_fields(), vec![strings(c.role), strings(c.content), tool_calls, optional_strings(c.tool_call_id)])?;
                vec![list(message_fields(), c.items, messages, None)?, strings(c.tools), strings(c.metadata)]
            }
        };
        Ok(RecordBatch::try_new(schema.clone(), columns)?)
    }
}

/// Writes the records of the JSONL file `jsonl` (in `layout`) to the Parquet file `out`, and
/// returns how many there were. A missing JSONL file counts as empty.
pub fn write(layout: Layout, jsonl: &Path, out: &Path) -> Result<usize> {
    let schema = schema(layout);
    let name = out.file_name().with_context(|| format!("{} has no file name", out.display()))?;
    let tmp = out.with_file_name(format!(".{}.tmp{}", name.to_string_lossy(), std::process::id()));
    let result = (|| -> Result<usize> {
        let file = File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        let properties = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_max_row_group_row_count(Some(BATCH))
            .set_created_by(format!("apigen-mt {}", super::manifest::VERSION))
            .build();
        let mut writer = ArrowWriter::try_new(file, schema.clone(), Some(properties))?;
        let mut columns = Columns::default();
        let mut rows = 0;
        if jsonl.exists() {
            let reader = BufReader::new(File::open(jsonl).with_context(|| format!("reading {}", jsonl.display()))?);
            for (i, line) in reader.lines().enumerate() {
                let line = line.with_context(|| format!("reading {}", jsonl.display()))?;
                if line.trim().is_empty() {
                    continue;
                }
                columns.push(layout, &line).with_context(|| format!("{}:{}: not a {layout:?} dataset record", jsonl.display(), i + 1))?;
                rows += 1;
                if columns.len() == BATCH {
                    writer.write(&columns.take(layout, &schema)?)?;
                }
            }
        }
        if columns.len() > 0 {
            writer.write(&columns.take(layout, &schema)?)?;
        }
        writer.close()?;
        File::open(&tmp).and_then(|f| f.sync_all()).with_context(|| format!("flushing {}", tmp.display()))?;
        std::fs::rename(&tmp, out).with_context(|| format!("renaming {} to {}", tmp.display(), out.display()))?;
        Ok(rows)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.with_context(|| format!("writing {}", out.display()))
}

/// Reads a Parquet file back as JSON rows, one object per row with the columns as keys: lists
/// as arrays, structs as objects, strings as strings (JSON columns stay text) and nulls as null.
/// For checking what was written; any file of strings, lists and structs reads.
pub fn read(path: &Path) -> Result<Vec<Value>> {
    let file = File::open(path).with_context(|| format!("reading {}", path.display()))?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .and_then(|b| b.build())
        .with_context(|| format!("{} is not a Parquet file", path.display()))?;
    let mut rows = Vec::new();
    for batch in reader {
        let batch = batch.with_context(|| format!("reading {}", path.display()))?;
        let schema = batch.schema();
        for row in 0..batch.num_rows() {
            let mut object = Map::new();
            for (field, column) in schema.fields().iter().zip(batch.columns()) {
                object.insert(field.name().clone(), cell(column.as_ref(), row)?);
            }
            rows.push(Value::Object(object));
        }
    }
    Ok(rows)
}

fn cell(array: &dyn Array, row: usize) -> Result<Value> {
    if array.is_null(row) {
        return Ok(Value::Null);
    }
    let any = array.as_any();
    if let Some(a) = any.downcast_ref::<StringArray>() {
        return Ok(Value::from(a.value(row)));
    }
    if let Some(a) = any.downcast_ref::<ListArray>() {
        let items = a.value(row);
        return (0..items.len()).map(|i| cell(items.as_ref(), i)).collect::<Result<Vec<_>>>().map(Value::Array);
    }
    if let Some(a) = any.downcast_ref::<StructArray>() {
        let mut object = Map::new();
        for (field, column) in a.fields().iter().zip(a.columns()) {
            object.insert(field.name().clone(), cell(column.as_ref(), row)?);
        }
        return Ok(Value::Object(object));
    }
    bail!("a column of type {} (this reader knows strings, lists and structs)", array.data_type())
}
