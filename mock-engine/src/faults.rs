//! Fault injection: a forced health state, a hang and a crash after N tokens.
//!
//! Counting is process-wide (across requests). This module never exits the process: it raises
//! [`Faults::crashed`], and `main` turns that into an abrupt exit with code 1, so in-process tests
//! survive it.

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// How long the crash waits after the last allowed token, so its bytes reach the client first.
pub const CRASH_FLUSH_DELAY: Duration = Duration::from_millis(100);

/// `--health`: what `/health` answers once the model is loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HealthMode {
    #[default]
    Ok,
    /// Always 503.
    Fail,
    /// 200 for `period`, then 503 for `period`, and so on from the start of the process.
    Flap { period: Duration },
}

impl HealthMode {
    pub fn is_healthy(self, since_start: Duration) -> bool {
        match self {
            Self::Ok => true,
            Self::Fail => false,
            Self::Flap { period } => {
                let period_ms = period.as_millis().max(1);
                (since_start.as_millis() / period_ms).is_multiple_of(2)
            }
        }
    }
}

impl FromStr for HealthMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "ok" => Ok(Self::Ok),
            "fail" => Ok(Self::Fail),
            _ => {
                let Some(period) = s.strip_prefix("flap:") else {
                    return Err(format!("expected `ok`, `fail` or `flap:<period_ms>`, got `{s}`"));
                };
                match period.parse::<u64>() {
                    Ok(ms) if ms > 0 => Ok(Self::Flap {
                        period: Duration::from_millis(ms),
                    }),
                    _ => Err(format!(
                        "`flap:<period_ms>` needs a whole number of milliseconds above 0, got `{period}`"
                    )),
                }
            }
        }
    }
}

impl fmt::Display for HealthMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ok => f.write_str("ok"),
            Self::Fail => f.write_str("fail"),
            Self::Flap { period } => write!(f, "flap:{}", period.as_millis()),
        }
    }
}

/// The verdict on the next token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Emit it; when `then_crash`, it is the last token this process will emit.
    Emit { then_crash: bool },
    /// Never emit it: the engine hangs here (and crashes, if past `--exit-after-tokens`).
    Stall { crash: bool },
}

#[derive(Debug)]
pub struct Faults {
    exit_after_tokens: Option<u64>,
    hang_after_tokens: Option<u64>,
    admitted: AtomicU64,
    crashed: CancellationToken,
}

impl Faults {
    pub fn new(exit_after_tokens: Option<u64>, hang_after_tokens: Option<u64>) -> Self {
        Self {
            exit_after_tokens,
            hang_after_tokens,
            admitted: AtomicU64::new(0),
            crashed: CancellationToken::new(),
        }
    }

    /// Counts the next token (process-wide) and says what to do with it. Pure bookkeeping.
    pub fn admit(&self) -> Admission {
        let n = self.admitted.fetch_add(1, Ordering::SeqCst).saturating_add(1);
        if let Some(limit) = self.exit_after_tokens {
            if n > limit {
                return Admission::Stall { crash: true };
            }
            if n == limit {
                return Admission::Emit { then_crash: true };
            }
        }
        match self.hang_after_tokens {
            Some(limit) if n > limit => Admission::Stall { crash: false },
            _ => Admission::Emit { then_crash: false },
        }
    }

    /// Raises [`Self::crashed`] after [`CRASH_FLUSH_DELAY`]. Needs a tokio runtime.
    pub fn schedule_crash(&self) {
        let crashed = self.crashed.clone();
        tokio::spawn(async move {
            tokio::time::sleep(CRASH_FLUSH_DELAY).await;
            crashed.cancel();
        });
    }

    /// Cancelled when `--exit-after-tokens` is reached.
    pub fn crashed(&self) -> &CancellationToken {
        &self.crashed
    }

    pub fn exit_after_tokens(&self) -> Option<u64> {
        self.exit_after_tokens
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_modes_parse_and_print_back() {
        for text in ["ok", "fail", "flap:250"] {
            assert_eq!(text.parse::<HealthMode>().unwrap().to_string(), text);
        }
        assert!("flap:0".parse::<HealthMode>().is_err());
        assert!("flap:x".parse::<HealthMode>().is_err());
        assert!(
            "sometimes"
                .parse::<HealthMode>()
                .unwrap_err()
                .contains("flap:<period_ms>")
        );
    }

    #[test]
    fn flapping_health_alternates_every_period() {
        let flap = HealthMode::Flap {
            period: Duration::from_millis(100),
        };
        let at = |ms| flap.is_healthy(Duration::from_millis(ms));
        assert!(at(0) && at(99));
        assert!(!at(100) && !at(199));
        assert!(at(200));
        assert!(!HealthMode::Fail.is_healthy(Duration::ZERO));
        assert!(HealthMode::Ok.is_healthy(Duration::from_secs(1000)));
    }

    #[test]
    fn exit_after_tokens_emits_exactly_n_then_stalls_and_crashes() {
        let faults = Faults::new(Some(2), None);
        assert_eq!(faults.admit(), Admission::Emit { then_crash: false });
        assert_eq!(faults.admit(), Admission::Emit { then_crash: true });
        assert_eq!(faults.admit(), Admission::Stall { crash: true });
    }

    #[test]
    fn exit_after_zero_tokens_crashes_on_the_first() {
        assert_eq!(Faults::new(Some(0), None).admit(), Admission::Stall { crash: true });
    }

    #[test]
    fn hang_after_tokens_emits_n_then_stalls_without_crashing() {
        let faults = Faults::new(None, Some(1));
        assert_eq!(faults.admit(), Admission::Emit { then_crash: false });
        assert_eq!(faults.admit(), Admission::Stall { crash: false });
        assert_eq!(faults.admit(), Admission::Stall { crash: false });
    }

    #[test]
    fn no_faults_always_emit() {
        let faults = Faults::new(None, None);
        assert!((0..100).all(|_| faults.admit() == Admission::Emit { then_crash: false }));
    }

    #[tokio::test(start_paused = true)]
    async fn a_scheduled_crash_fires_after_the_flush_delay() {
        let faults = Faults::new(Some(1), None);
        faults.schedule_crash();
        tokio::time::sleep(CRASH_FLUSH_DELAY / 2).await;
        assert!(!faults.crashed().is_cancelled());
        tokio::time::sleep(CRASH_FLUSH_DELAY).await;
        assert!(faults.crashed().is_cancelled());
    }
}
