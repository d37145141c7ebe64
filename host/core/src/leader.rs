//! Loops that must run on one host at a time hold a singleton lock.

use std::time::Duration;

/// A singleton lock held across the iterations of a loop that must run on
/// one host at a time: taken when free, its connection checked every 5 s,
/// given up when that connection is lost (another host may then take it).
pub struct Leadership {
    name: &'static str,
    lock: Option<warden_store::notify::Singleton>,
    checked: tokio::time::Instant,
}

impl Leadership {
    /// For the lock named `name` (not held yet).
    pub fn new(name: &'static str) -> Self {
        Leadership {
            name,
            lock: None,
            checked: tokio::time::Instant::now(),
        }
    }

    /// Whether this host holds the lock now, taking it when it is free.
    pub async fn held(&mut self, store: &warden_store::Store) -> bool {
        if self.checked.elapsed() >= Duration::from_secs(5) {
            self.checked = tokio::time::Instant::now();
            if let Some(l) = self.lock.as_mut()
                && !l.alive().await
            {
                tracing::warn!(
                    lock = self.name,
                    "lost a singleton lock's connection; another host may take over"
                );
                self.lock = None;
            }
        }
        if self.lock.is_none() {
            match store.try_singleton(self.name).await {
                Ok(Some(l)) => {
                    tracing::info!(
                        lock = self.name,
                        "this host now runs the {} loop",
                        self.name
                    );
                    self.lock = Some(l);
                }
                Ok(None) => return false,
                Err(e) => {
                    tracing::warn!(lock = self.name, error = %e, "cannot take a singleton lock");
                    return false;
                }
            }
        }
        true
    }

    /// Gives the lock up, to take it again on the next `held` (after a
    /// database error that may have cost its connection).
    pub fn release(&mut self) {
        self.lock = None;
    }
}
