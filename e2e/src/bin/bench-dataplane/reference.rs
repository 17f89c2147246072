//! The reference proxy: a `bench-proxy` process in front of a Pool's replica endpoints, the
//! third way to a token (client → one plain HTTP hop → engine). It shows what any proxy costs on
//! this machine, so what llama-orch adds can be read against the hop itself. It must not
//! measure. With `--reference tcp` it is a byte pump instead ([`Hop::Tcp`]), the floor under
//! any proxy that relays in user space.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use llama_orch_e2e::daemon::bin;

/// What the reference does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Hop {
    /// One plain HTTP hop: `bench-proxy`, request by request.
    Http,
    /// A byte pump, no HTTP: `bench-proxy --tcp`, connection by connection.
    Tcp,
}

impl Hop {
    /// From `--reference http|tcp`.
    pub(crate) fn parse(s: &str) -> Option<Hop> {
        match s {
            "http" => Some(Hop::Http),
            "tcp" => Some(Hop::Tcp),
            _ => None,
        }
    }

    /// As the report names it.
    pub(crate) fn describe(self) -> &'static str {
        match self {
            Hop::Http => "one plain HTTP hop (`bench-proxy`)",
            Hop::Tcp => "a TCP byte pump, no HTTP (`bench-proxy --tcp`)",
        }
    }
}

/// A running `bench-proxy`, killed when dropped.
pub(crate) struct Reference {
    child: Child,
    /// `http://127.0.0.1:port`.
    pub(crate) url: String,
}

impl Reference {
    /// Starts one in front of `endpoints` (taken in turn); `fresh` opens an upstream connection
    /// per request (for llama-server, which closes it after a streamed reply; a byte pump
    /// opens one per connection anyway).
    pub(crate) fn start(endpoints: &[String], fresh: bool, hop: Hop) -> Reference {
        let mut cmd = Command::new(bin("bench-proxy"));
        cmd.arg("--upstream").arg(endpoints.join(","));
        match hop {
            Hop::Tcp => {
                cmd.arg("--tcp");
            }
            Hop::Http if fresh => {
                cmd.arg("--fresh");
            }
            Hop::Http => {}
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
