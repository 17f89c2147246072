//! [`EngineError`]: every way a generation on an engine can fail, and how each maps onto the
//! data-plane taxonomy (an [`ErrorCode`] and whether retrying may succeed).
//!
//! | Error | Code | Retriable | Why |
//! | --- | --- | --- | --- |
//! | `Connect` | `WORKER_RESET` | yes | Placement only picks Ready replicas, so a refused or timed-out connect means the worker went away; no token was sent, so a retry elsewhere is safe. |
//! | `Rejected` 400, 413, 422 | `INVALID_PARAMS` | no | The engine refused the request itself (e.g. `exceed_context_size_error`). |
//! | `Rejected` 503 | `POOL_UNREADY` | yes | llama-server answers 503 while it loads the model. |
//! | `Rejected` 429 | `REPLICA_EXHAUSTED` | yes | The engine has no free slot. |
//! | `Rejected` 408, 502, 504 | `WORKER_RESET` | yes | A proxy or the engine gave up on the connection. |
//! | `Rejected` other | `INTERNAL` | no | 404/405 mean a wrong API flavour; 500 is usually deterministic. |
//! | `Reset` | `WORKER_RESET` | yes | The connection broke mid-stream (engine crash, OOM kill). |
//! | `Stalled` | `DECODE_TIMEOUT` | yes | The engine is wedged; another replica may serve it. |
//! | `WallClock` | `DECODE_TIMEOUT` | no | The same request would run past the same limit again. |
//! | `Protocol` | `INTERNAL` | no | The engine spoke something we cannot read: a bug or a wrong flavour. |
//!
//! This module only classifies; it does not log or build response bodies.

use llorch_manifests::task::ErrorCode;

use super::transport::TransportError;

/// Why a generation failed.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The engine could not be reached (connection refused, connect timeout).
    #[error("could not reach the engine at {url}")]
    Connect {
        /// The URL that was tried.
        url: String,
        /// What the transport saw.
        #[source]
        source: TransportError,
    },
    /// The engine answered with an error of its own: a non-2xx status before streaming, or an
    /// error event inside the stream (then `status` is the `code` it carried, 500 if none).
    #[error("the engine answered {status}: {message}")]
    Rejected {
        /// The HTTP status (or the error event's code).
        status: u16,
        /// The engine's message (its `error.message` when it sent one).
        message: String,
    },
    /// The connection was lost before the reply was complete.
    #[error("the engine connection was lost before the reply was complete")]
    Reset {
        /// The transport error, when there was one (none for a clean close without an end).
        #[source]
        source: Option<TransportError>,
    },
    /// The engine sent nothing for `after_ms` (the idle watchdog).
    #[error("the engine sent nothing for {after_ms} ms")]
    Stalled {
        /// The idle limit that was exceeded.
        after_ms: u64,
    },
    /// The generation ran past `after_ms` in total (the wall-clock watchdog).
    #[error("the generation ran past its {after_ms} ms limit")]
    WallClock {
        /// The wall-clock limit that was exceeded.
        after_ms: u64,
    },
    /// The engine sent something that is not its API (unparseable event, wrong content type).
    #[error("the engine's reply could not be read: {0}")]
    Protocol(String),
}

impl EngineError {
    /// The stable data-plane code (see the module table).
    pub fn code(&self) -> ErrorCode {
        match self {
            EngineError::Connect { .. } | EngineError::Reset { .. } => ErrorCode::WorkerReset,
            EngineError::Rejected { status, .. } => match status {
                400 | 413 | 422 => ErrorCode::InvalidParams,
                503 => ErrorCode::PoolUnready,
                429 => ErrorCode::ReplicaExhausted,
                408 | 502 | 504 => ErrorCode::WorkerReset,
                _ => ErrorCode::Internal,
            },
            EngineError::Stalled { .. } | EngineError::WallClock { .. } => ErrorCode::DecodeTimeout,
            EngineError::Protocol(_) => ErrorCode::Internal,
        }
    }

    /// Whether sending the same request again (to this replica or another) may succeed.
    pub fn retriable(&self) -> bool {
        match self {
            EngineError::Connect { .. } | EngineError::Reset { .. } | EngineError::Stalled { .. } => true,
            EngineError::Rejected { status, .. } => matches!(status, 408 | 429 | 502 | 503 | 504),
            EngineError::WallClock { .. } | EngineError::Protocol(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rejected(status: u16) -> EngineError {
        EngineError::Rejected {
            status,
            message: String::new(),
        }
    }

    #[test]
    fn rejections_map_by_status() {
        let cases = [
            (400, ErrorCode::InvalidParams, false),
            (422, ErrorCode::InvalidParams, false),
            (503, ErrorCode::PoolUnready, true),
            (429, ErrorCode::ReplicaExhausted, true),
            (502, ErrorCode::WorkerReset, true),
            (404, ErrorCode::Internal, false),
            (500, ErrorCode::Internal, false),
        ];
        for (status, code, retriable) in cases {
            let err = rejected(status);
            assert_eq!((err.code(), err.retriable()), (code, retriable), "status {status}");
        }
    }

    #[test]
    fn stream_failures_map_to_reset_timeout_and_internal() {
        let reset = EngineError::Reset { source: None };
        assert_eq!((reset.code(), reset.retriable()), (ErrorCode::WorkerReset, true));
        let stalled = EngineError::Stalled { after_ms: 300 };
        assert_eq!((stalled.code(), stalled.retriable()), (ErrorCode::DecodeTimeout, true));
        let wall = EngineError::WallClock { after_ms: 1_000 };
        assert_eq!((wall.code(), wall.retriable()), (ErrorCode::DecodeTimeout, false));
        let protocol = EngineError::Protocol("x".into());
        assert_eq!((protocol.code(), protocol.retriable()), (ErrorCode::Internal, false));
    }
}
