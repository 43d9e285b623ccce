//! Every wait has a deadline, and its timeout error says what was waited for and how long.

use std::future::Future;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
#[error("timed out after {:.1}s waiting for {what}", waited.as_secs_f64())]
pub struct Timeout {
    pub what: String,
    pub waited: Duration,
}

/// Retries `op` every `interval` until it returns `Some`, or fails after `timeout`.
pub async fn until<T, F, Fut>(what: &str, timeout: Duration, interval: Duration, mut op: F) -> Result<T, Timeout>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = tokio::time::Instant::now();
    loop {
        if let Some(v) = op().await {
            return Ok(v);
        }
        if start.elapsed() >= timeout {
            return Err(Timeout {
                what: what.to_string(),
                waited: start.elapsed(),
            });
        }
        tokio::time::sleep(interval).await;
    }
}

/// Awaits `fut`, or fails after `limit`: for one operation that must not hang (a QMP command on
/// a wedged QEMU).
pub async fn within<T>(what: &str, limit: Duration, fut: impl Future<Output = T>) -> Result<T, Timeout> {
    tokio::time::timeout(limit, fut).await.map_err(|_| Timeout {
        what: what.to_string(),
        waited: limit,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn within_names_what_never_finished() {
        let e = within("QMP `cont`", Duration::from_secs(10), std::future::pending::<()>())
            .await
            .unwrap_err();
        assert_eq!(e.to_string(), "timed out after 10.0s waiting for QMP `cont`");
        assert_eq!(within("x", Duration::from_secs(1), async { 7 }).await.unwrap(), 7);
    }

    #[tokio::test]
    async fn until_reports_what_and_how_long() {
        let e = until(
            "the moon",
            Duration::from_millis(30),
            Duration::from_millis(10),
            || async { None::<()> },
        )
        .await
        .unwrap_err();
        assert_eq!(e.what, "the moon");
        assert!(e.waited >= Duration::from_millis(30));
        assert!(e.to_string().starts_with("timed out after 0."), "{e}");
        assert!(e.to_string().ends_with("s waiting for the moon"), "{e}");
    }

    #[tokio::test]
    async fn until_returns_value() {
        let mut n = 0;
        let v = until("n to reach 3", Duration::from_secs(5), Duration::from_millis(1), || {
            n += 1;
            let r = (n >= 3).then_some(n);
            async move { r }
        })
        .await
        .unwrap();
        assert_eq!(v, 3);
    }
}
