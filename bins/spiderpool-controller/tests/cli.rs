//! The binaries' command lines parse (clap checks its definitions on `--help`).

use std::process::Command;

fn help(bin: &str) -> String {
    let out = Command::new(bin).arg("--help").output().expect("run");
    assert!(
        out.status.success(),
        "{bin} --help: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn controller_and_init_print_their_help() {
    assert!(help(env!("CARGO_BIN_EXE_spiderpool-controller")).contains("--kubeconfig"));
    assert!(help(env!("CARGO_BIN_EXE_spiderpool-init")).contains("--kubeconfig"));
}
