//! A Phase 2 run with its agent and user on `apigen-mt serve`'s chat API writes the records the
//! same run writes in process (the fault tests cover the completions API the same way).

use apigen_mt::config::server::{Server, ServerFile};
use apigen_mt::engine::loaded::LoadOptions;
use apigen_mt::engine::remote::RemoteModel;
use apigen_mt::engine::LanguageModel;
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
    // stats.json's per-role timing counts what each role asked of the server: the same requests
    // and prompt tokens as in process, for the same conversations.
    let roles = |dir: &std::path::Path| -> Value {
        let stats: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("stats.json")).expect("stats.json")).expect("JSON");
        stats["timing"]["roles"].clone()
    };
    let (here, reference) = (roles(&out), roles(&fixture.reference));
    for role in ["agent", "user"] {
        for key in ["requests", "prompt_tokens"] {
            assert_eq!(here[role][key], reference[role][key], "{role} {key}: {here} vs {reference}");
        }
    }
    assert!(here["user"]["requests"].as_u64() >= Some(3), "{here}");
}

/// A role on a server runs as many attempts at once by default as the server takes requests
/// (`max_in_flight`): what a server model reports as its capacity, whatever the context.
#[test]
fn a_server_model_offers_its_most_requests_in_flight_as_capacity() {
    let Some(fixture) = fixture() else { return };
    let serve = Serve::start(fixture, "capacity", &[]);
    let options = LoadOptions::from_env(true).expect("options");
    for limit in [3, 40] {
        let server = Server::resolve(&serve.url(), &ServerFile { max_in_flight: Some(limit), ..ServerFile::default() }).expect("a server");
        let (model, connected) = RemoteModel::connect(&server, None, &options.hub, options.date).expect("serve answers");
        assert_eq!(connected.model, fixture.gguf.to_str().expect("a UTF-8 path"));
        assert_eq!((model.capacity(4096), model.capacity(100_000)), (Some(limit), Some(limit)));
    }
}
