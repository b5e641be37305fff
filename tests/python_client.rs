//! An independent client in Python (tests/clients/contract.py) checks every
//! service byte for byte, tcp-upper against Python's own `str.upper`.

mod common;

use common::*;
use std::process::Command;

common::backend_tests!(python_client_sees_the_whole_contract);

fn python_client_sees_the_whole_contract(backend: &str) {
    if !python3_present() {
        return;
    }
    let srv = Server::start(backend, &["--array-len", "1000"]);
    let mut command = Command::new("python3");
    command.arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients/contract.py"));
    for service in SERVICES {
        command.arg(format!("--{service}"));
        command.arg(srv.addr(service).to_string());
    }
    command.args(["--array-len", "1000"]);
    let run = run_command(command);
    run.assert_success();
    assert!(run.stdout.contains("checks passed"), "stdout:\n{}", run.stdout);
}
