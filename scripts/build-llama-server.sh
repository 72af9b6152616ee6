#!/usr/bin/env bash
# Builds llama.cpp's llama-server (with llama-bench and llama-batched-bench) from the vendor/llama.cpp
# folder of the llama-cpp-python source package, outside this repository; llama.cpp is never
# committed here. Prints the folder that holds the binaries.
#
#   scripts/build-llama-server.sh [BUILD_DIR]      (default: ../llama-build, beside the checkout)
#
# Settings, from the environment:
#   LLAMA_CPP_PYTHON=0.3.36   the source package's version (pip downloads it once)
#   JOBS=2                    parallel compile jobs
#   LLGUIDANCE=0              1: build with llguidance, so llama-server takes Lark grammars
#                             (`%llguidance {}`) and a run's tool-call grammars are enforced there;
#                             llama.cpp's CMake then fetches llguidance from GitHub and builds it
#                             with cargo, so it needs the network
#
# AMX is compiled out: on VMs that list AMX without letting programs use it (this project's CI
# machine among them), llama.cpp's AMX kernels die with SIGILL. Everything else the CPU offers
# stays on (GGML_NATIVE).
#
# Then, for example:
#   BIN/llama-server -m ../shared/models/smollm2-135m-instruct/model-q4_1.gguf --port 8081 -c 32768 -np 4
#   apigen-mt trajectories ... --model http://127.0.0.1:8081/v1 --server-template ../shared/models/smollm2-135m-instruct
#
# llama-server splits -c among its -np slots: each request gets -c / -np tokens of context (the
# run reads it from /props and fails longer prompts as context_exceeded), so give -c as -np times
# the model's context. The run sends at most --server-max-in-flight requests at once (default 32);
# requests beyond -np wait in llama-server's queue.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
DIR=$(realpath -m "${1:-$REPO/../llama-build}")
case "$DIR/" in
    "$REPO"/*) echo "error: $DIR is inside the repository; build llama.cpp outside it" >&2; exit 2 ;;
esac
VERSION=${LLAMA_CPP_PYTHON:-0.3.36}
JOBS=${JOBS:-2}
LLGUIDANCE=${LLGUIDANCE:-0}

mkdir -p "$DIR"
cd "$DIR"
SRC=$DIR/llama_cpp_python-$VERSION/vendor/llama.cpp
if [[ ! -f $SRC/CMakeLists.txt ]]; then
    # The source package alone: `--no-binary :all:` would also build the package's build
    # requirements from source to read its metadata, CMake among them (it began compiling CMake
    # here).
    python3 -m pip download --quiet --no-deps --no-binary llama-cpp-python "llama-cpp-python==$VERSION" -d "$DIR"
    tar -xzf "llama_cpp_python-$VERSION.tar.gz"
fi
command -v cmake >/dev/null || python3 -m pip install --quiet cmake

NO_AMX="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
BUILD=$SRC/build-server
cmake -S "$SRC" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON -DLLAMA_CURL=OFF \
    -DLLAMA_LLGUIDANCE="$([[ $LLGUIDANCE == 1 ]] && echo ON || echo OFF)" \
    -DCMAKE_C_FLAGS="$NO_AMX" -DCMAKE_CXX_FLAGS="$NO_AMX" >&2
cmake --build "$BUILD" -j"$JOBS" --target llama-server llama-bench llama-batched-bench >&2
"$BUILD/bin/llama-server" --version >&2
echo "$BUILD/bin"
