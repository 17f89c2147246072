//! Time limits on a generation: an idle limit (no event for N ms → [`EngineError::Stalled`])
//! and a wall-clock limit (N ms in total → [`EngineError::WallClock`]).
//!
//! [`Watchdog::start`] covers the whole generation, from sending the request (a hung engine may
//! never send its response head) to the last event; [`Watchdog::wrap`] covers a stream that is
//! already open. Either way the error is the last item, and the engine connection is dropped
//! with it, which makes llama-server cancel the generation and free its slot.
//!
//! On the token path it reads the clock once per event and touches no timer: the idle timer is
//! moved only when it fires early.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::Stream;
use tokio::time::{Instant, Sleep};

use super::{EngineError, EngineEvent, TokenStream};

/// The limits; `None` turns one off.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Watchdog {
    /// Longest wait for the next event (the first one included).
    pub idle: Option<Duration>,
    /// Longest the whole generation may take.
    pub wall: Option<Duration>,
}

impl Watchdog {
    /// Both limits.
    pub fn new(idle: Duration, wall: Duration) -> Self {
        Self {
            idle: Some(idle),
            wall: Some(wall),
        }
    }

    /// Awaits `starting` (an [`EngineClient::generate`](super::EngineClient::generate)) and the
    /// stream it opens, both under the limits, which count from this call.
    pub async fn start<F>(self, starting: F) -> Result<TokenStream, EngineError>
    where
        F: Future<Output = Result<TokenStream, EngineError>>,
    {
        let began = Instant::now();
        let wall_deadline = self.wall.map(|wall| began + wall);
        let idle_deadline = self.idle.map(|idle| began + idle);
        let deadline = match (wall_deadline, idle_deadline) {
            (Some(wall), Some(idle)) => Some(wall.min(idle)),
            (wall, idle) => wall.or(idle),
        };
        let stream = match deadline {
            None => starting.await?,
            Some(deadline) => match tokio::time::timeout_at(deadline, starting).await {
                Ok(started) => started?,
                Err(_) if Some(deadline) == wall_deadline => return Err(self.wall_clock()),
                Err(_) => return Err(self.stalled()),
            },
        };
        Ok(self.guard(stream, wall_deadline))
    }

    /// Bounds an open stream; the limits count from this call.
    pub fn wrap(self, stream: TokenStream) -> TokenStream {
        let wall_deadline = self.wall.map(|wall| Instant::now() + wall);
        self.guard(stream, wall_deadline)
    }

    fn guard(self, stream: TokenStream, wall_deadline: Option<Instant>) -> TokenStream {
        if self.idle.is_none() && self.wall.is_none() {
            return stream;
        }
        let now = Instant::now();
        Box::pin(Guarded {
            inner: Some(stream),
            limits: self,
            last_event: now,
            idle_timer: self.idle.map(|idle| Box::pin(tokio::time::sleep_until(now + idle))),
            wall_timer: wall_deadline.map(|deadline| Box::pin(tokio::time::sleep_until(deadline))),
        })
    }

    fn stalled(self) -> EngineError {
        EngineError::Stalled {
            after_ms: millis(self.idle),
        }
    }

    fn wall_clock(self) -> EngineError {
        EngineError::WallClock {
            after_ms: millis(self.wall),
        }
    }
}

fn millis(limit: Option<Duration>) -> u64 {
    limit.map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

struct Guarded {
    /// `None` once the stream has ended (done, failed or timed out).
    inner: Option<TokenStream>,
    limits: Watchdog,
    last_event: Instant,
    idle_timer: Option<Pin<Box<Sleep>>>,
    wall_timer: Option<Pin<Box<Sleep>>>,
}

impl Guarded {
    fn end(&mut self, err: EngineError) -> Poll<Option<Result<EngineEvent, EngineError>>> {
        self.inner = None;
        self.idle_timer = None;
        self.wall_timer = None;
        Poll::Ready(Some(Err(err)))
    }
}

impl Stream for Guarded {
    type Item = Result<EngineEvent, EngineError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(None);
        };
        // The wall limit is a hard cap: checked even when a token is ready.
        if let Some(wall) = this.wall_timer.as_mut()
            && wall.as_mut().poll(cx).is_ready()
        {
            let err = this.limits.wall_clock();
            return this.end(err);
        }
        match inner.as_mut().poll_next(cx) {
            Poll::Ready(Some(item)) => {
                if matches!(item, Ok(EngineEvent::Token(_) | EngineEvent::Delta(_))) {
                    this.last_event = Instant::now();
                } else {
                    // `Done` and errors are final: stop the timers too.
                    this.inner = None;
                    this.idle_timer = None;
                    this.wall_timer = None;
                }
                Poll::Ready(Some(item))
            }
            Poll::Ready(None) => {
                this.inner = None;
                Poll::Ready(None)
            }
            Poll::Pending => {
                let (Some(idle), Some(timer)) = (this.limits.idle, this.idle_timer.as_mut()) else {
                    return Poll::Pending;
                };
                loop {
                    if timer.as_mut().poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    let due = this.last_event + idle;
                    if due <= Instant::now() {
                        let err = this.limits.stalled();
                        return this.end(err);
                    }
                    // Events came since the timer was set: move it, and poll it to register.
                    timer.as_mut().reset(due);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use futures_util::{StreamExt, stream};

    use super::*;
    use crate::engine::Finish;

    /// A stream that yields `n` tokens `every` apart, then `Done`, or hangs instead of ending.
    fn tokens(n: u32, every: Duration, then_hang: bool) -> TokenStream {
        let ticks = stream::unfold(0, move |i| async move {
            if i == n {
                if then_hang {
                    std::future::pending::<()>().await;
                }
                return None;
            }
            tokio::time::sleep(every).await;
            Some((Ok(EngineEvent::Token(format!("t{i}"))), i + 1))
        });
        let done = stream::iter([Ok(EngineEvent::Done {
            tokens_out: n,
            finish: Finish::Length,
            tokens_in: None,
        })]);
        Box::pin(ticks.chain(done))
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn idle(n: u64) -> Watchdog {
        Watchdog {
            idle: Some(ms(n)),
            wall: None,
        }
    }

    fn count_tokens(items: &[Result<EngineEvent, EngineError>]) -> usize {
        items.iter().filter(|i| matches!(i, Ok(EngineEvent::Token(_)))).count()
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_engine_is_stalled_after_the_idle_limit() {
        let began = Instant::now();
        let items: Vec<_> = idle(300).wrap(tokens(2, ms(50), true)).collect().await;
        assert_eq!(count_tokens(&items), 2);
        assert_eq!(items.len(), 3);
        assert!(
            matches!(items[2], Err(EngineError::Stalled { after_ms: 300 })),
            "{:?}",
            items[2]
        );
        // Two tokens at 50 ms and 100 ms, then 300 ms of silence.
        assert_eq!(began.elapsed(), ms(400));
    }

    #[tokio::test(start_paused = true)]
    async fn steady_tokens_keep_the_idle_watchdog_quiet() {
        let items: Vec<_> = idle(300).wrap(tokens(10, ms(250), false)).collect().await;
        assert_eq!(count_tokens(&items), 10);
        assert!(matches!(
            items.last(),
            Some(Ok(EngineEvent::Done { tokens_out: 10, .. }))
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn a_delta_is_progress_not_the_end() {
        let delta = || {
            Ok(EngineEvent::Delta(Box::new(crate::engine::Delta {
                reasoning: Some("hm".into()),
                ..Default::default()
            })))
        };
        let inner = stream::iter([delta(), delta()]).chain(tokens(2, ms(250), false));
        let items: Vec<_> = idle(300).wrap(Box::pin(inner)).collect().await;
        assert_eq!(items.len(), 5, "two deltas, two tokens, done: {items:?}");
        assert!(matches!(items.last(), Some(Ok(EngineEvent::Done { .. }))));
    }

    #[tokio::test(start_paused = true)]
    async fn the_wall_limit_cuts_a_steady_stream() {
        let watchdog = Watchdog {
            idle: Some(ms(300)),
            wall: Some(ms(450)),
        };
        let items: Vec<_> = watchdog.wrap(tokens(10, ms(100), false)).collect().await;
        assert_eq!(count_tokens(&items), 4);
        assert!(matches!(
            items.last(),
            Some(Err(EngineError::WallClock { after_ms: 450 }))
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn nothing_follows_done_however_long_one_waits() {
        let mut stream = Watchdog::new(ms(100), ms(200)).wrap(tokens(1, ms(10), false));
        assert!(matches!(stream.next().await, Some(Ok(EngineEvent::Token(_)))));
        assert!(matches!(stream.next().await, Some(Ok(EngineEvent::Done { .. }))));
        tokio::time::sleep(ms(1_000)).await;
        assert!(stream.next().await.is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn a_start_that_never_answers_times_out_on_the_nearer_limit() {
        let never = std::future::pending::<Result<TokenStream, EngineError>>;
        let stalled = Watchdog::new(ms(100), ms(500)).start(never()).await;
        assert!(matches!(stalled, Err(EngineError::Stalled { after_ms: 100 })));
        let wall = Watchdog::new(ms(500), ms(200)).start(never()).await;
        assert!(matches!(wall, Err(EngineError::WallClock { after_ms: 200 })));
    }

    #[tokio::test(start_paused = true)]
    async fn the_wall_limit_counts_from_start_including_the_wait_for_the_engine() {
        let watchdog = Watchdog::new(ms(1_000), ms(500));
        let slow_start = async {
            tokio::time::sleep(ms(400)).await;
            Ok(tokens(10, ms(40), false))
        };
        let items: Vec<_> = watchdog.start(slow_start).await.unwrap().collect().await;
        // 400 ms to start leaves 100 ms: two tokens, 40 ms apart.
        assert_eq!(count_tokens(&items), 2);
        assert!(matches!(
            items.last(),
            Some(Err(EngineError::WallClock { after_ms: 500 }))
        ));
    }
}
