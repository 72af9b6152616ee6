//! `apigen-mt serve` answers the official `openai` Python client: chat, completions, streaming,
//! tools and a JSON schema (tests/serve/openai_client.py). Skipped with a notice where Python or
//! the package is absent (`.ci/run` installs it).

use std::process::Command;

use super::{fixture, Serve};

#[test]
fn the_openai_python_client_gets_chat_completions_streams_tools_and_json() {
    let Some(fixture) = fixture() else { return };
    let has_client = Command::new("python3").args(["-c", "import openai"]).output().is_ok_and(|o| o.status.success());
    if !has_client {
        eprintln!("skipped: python3 with the `openai` package is absent (pip install openai)");
        return;
    }
    let serve = Serve::start(fixture, "openai", &["--api-key", "sk-test"]);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/serve/openai_client.py");
    let output = Command::new("python3").arg(script).arg(serve.url()).arg("sk-test").output().expect("python3 runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    for check in ["models", "chat", "completions", "stream", "tools", "json_schema", "errors"] {
        assert!(stdout.lines().any(|l| l == format!("ok {check}")), "{check} did not pass: {stdout}");
    }
}
