//! The reference proxy: a `bench-proxy` process in front of a Pool's replica endpoints, the
//! third way to a token (client → one plain HTTP hop → engine). It shows what any proxy costs on
//! this machine, so what llama-orch adds can be read against the hop itself. It must not
//! measure.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use llama_orch_e2e::daemon::bin;

/// A running `bench-proxy`, killed when dropped.
pub(crate) struct Reference {
    child: Child,
    /// `http://127.0.0.1:port`.
    pub(crate) url: String,
}

impl Reference {
    /// Starts one in front of `endpoints` (taken in turn); `fresh` opens an upstream connection
    /// per request (for llama-server, which closes it after a streamed reply).
    pub(crate) fn start(endpoints: &[String], fresh: bool) -> Reference {
        let mut cmd = Command::new(bin("bench-proxy"));
        cmd.arg("--upstream").arg(endpoints.join(","));
        if fresh {
            cmd.arg("--fresh");
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start bench-proxy");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("its stdout"))
            .read_line(&mut line)
            .expect("read bench-proxy's port");
        let port: u16 = line
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("bench-proxy printed {line:?}, not its port"));
        Reference {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }

    /// Its pid, for reading its CPU time.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Reference {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
