//! gRPC end to end, with peers not written here: PyPI's grpcio as server (two of them, `h2c://`
//! backends) and as client (over TLS to lbx). Unary, server-streaming and client-streaming
//! calls; status codes, messages and trailing metadata intact; the plugin (header_router)
//! routes on the gRPC path; a 20 s stream that keeps sending is not cut by timeouts far shorter.

use serde_json::Value;

use crate::support::{PeerServer, TestCa, TestProxy, plugins, run_peer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_calls_pass_through_lbx_with_statuses_trailers_and_streams_intact() {
    let (one, two) = (
        PeerServer::start("grpc_server.py", "one"),
        PeerServer::start("grpc_server.py", "two"),
    );
    let ca = TestCa::new("grpc");
    let site = ca.issue("site", &["grpc.test"]);
    let toml = format!(
        "[plugin]\npath = {plugin:?}\ndeadline = \"1s\"\n\
         [plugin.config]\ndefault = {{ svc = \"echo\" }}\n\
         rules = [{{ path_prefix = \"/lbx.test.Other/\", group = {{ svc = \"other\" }} }}]\n\
         [[backend]]\nurl = \"h2c://127.0.0.1:{p1}\"\nlabels = {{ svc = \"echo\" }}\n\
         [[backend]]\nurl = \"h2c://127.0.0.1:{p2}\"\nlabels = {{ svc = \"other\" }}\n\
         [tls]\nlisten = \"127.0.0.1:0\"\n[[tls.certificate]]\ncert = {cert:?}\nkey = {key:?}\n\
         [timeouts]\nresponse_headers = \"2s\"\nrequest = \"3s\"\nbackend_idle = \"3s\"\n",
        plugin = plugins::HEADER_ROUTER,
        p1 = one.port,
        p2 = two.port,
        cert = site.cert.to_str().unwrap(),
        key = site.key.to_str().unwrap(),
    );
    let proxy = TestProxy::start(&toml).await;
    let target = format!("127.0.0.1:{}", proxy.tls.unwrap().port());
    let ca_pem = ca.ca_pem.to_str().unwrap().to_string();
    let stdout = run_peer("grpc_client.py", vec![target, ca_pem, "grpc.test".into()]).await;
    let calls: Vec<Value> = stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let call = |method: &str| {
        calls
            .iter()
            .find(|c| c["method"] == method)
            .unwrap_or_else(|| panic!("no {method} call in {stdout}"))
            .clone()
    };

    let unary = call("Unary");
    assert_eq!(unary["status"], "OK", "{unary}");
    assert_eq!(unary["response"], "olleh");
    assert_eq!(unary["trailers"]["x-server"], "one");

    let failed = call("UnaryFail");
    assert_eq!(failed["status"], "INVALID_ARGUMENT", "{failed}");
    assert_eq!(failed["details"], "bad input");
    assert_eq!(failed["trailers"]["x-server"], "one");

    // header_router saw `/lbx.test.Other/Unary` and picked the other group.
    let other = call("Other");
    assert_eq!(other["status"], "OK", "{other}");
    assert_eq!(other["response"], "other");
    assert_eq!(other["trailers"]["x-server"], "two");

    let collect = call("Collect");
    assert_eq!(collect["status"], "OK", "{collect}");
    assert_eq!(collect["response"], "60 1420020");

    let stream = call("Stream");
    assert_eq!(stream["status"], "OK", "{stream}");
    let messages = stream["response"].as_array().unwrap();
    assert_eq!(messages.len(), 40);
    assert_eq!(messages[39], "39");
    assert_eq!(stream["trailers"]["x-server"], "one");
    // 20 s of messages, against response_headers = 2 s, request = 3 s, backend_idle = 3 s.
    assert!(stream["seconds"].as_f64().unwrap() >= 19.0, "{stream}");
}
