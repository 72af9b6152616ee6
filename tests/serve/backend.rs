//! A Phase 2 run with its agent and user on `apigen-mt serve`'s chat API writes the records the
//! same run writes in process (the fault tests cover the completions API the same way).

use serde_json::Value;

use super::{fixture, server_entries, Serve};

#[test]
fn a_run_on_the_chat_api_of_serve_writes_the_records_of_the_in_process_run() {
    let Some(fixture) = fixture() else { return };
    let serve = Serve::start(fixture, "backend", &[]);
    let out = fixture.scratch("backend");
    let url = serve.url();
    // The judge stays in process (best-of 1 never calls it): local and server roles mix. Through
    // the chat API the server renders the prompts and parses the tool calls; with the same
    // template and format, the conversations come out the same.
    let gguf = fixture.gguf.to_str().expect("a UTF-8 path");
    let args = ["--model", gguf, "--agent-model", &url, "--user-model", &url, "--server-api", "chat", "--concurrency", "2"];
    let output = fixture.trajectories(&out, &args);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    fixture.assert_same_records(&out);

    // The manifest names each role's backend: the server renders (no template of ours).
    let manifest: Value = serde_json::from_str(&std::fs::read_to_string(out.join("manifest.json")).expect("manifest")).expect("JSON");
    let agent = &manifest["config"]["agent"];
    assert_eq!(agent["server"]["url"], url.as_str());
    assert_eq!(agent["server"]["api"], "chat");
    assert_eq!(agent["server"]["template"], Value::Null);
    assert_eq!(agent["model"], gguf, "the served model name (serve names it as given)");
    assert!(manifest["config"]["judge"].get("server").is_none());
    // One stats entry per server model, with what was asked of it.
    let servers = server_entries(&out);
    assert_eq!(servers.len(), 1, "{servers:?}");
    let server = &servers[0]["server"];
    assert_eq!((server["flavor"].as_str(), server["retries"].as_u64(), server["failures"].as_u64()), (Some("apigen-mt"), Some(0), Some(0)));
    assert!(server["requests"].as_u64() >= Some(6), "{server}");
}
