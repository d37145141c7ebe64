//! Event streams open per token (SPEC SE-4): every server-sent event
//! stream holds a connection and a task that reads the database, so each
//! token has a capped number, and all of them end when the host stops.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use crate::error::Error;
use crate::sync::Unpoisoned as _;

/// The server-sent event streams open per token (task, run and status
/// streams), capped: each holds a connection and a task that reads the
/// database for as long as the client keeps it open. Every stream also
/// ends when the host shuts down.
pub struct StreamSlots {
    max: usize,
    open: Mutex<HashMap<String, usize>>,
    stopping: watch::Receiver<bool>,
}

impl StreamSlots {
    /// At most `max` streams per token; all end when `stopping` turns true.
    pub fn new(max: usize, stopping: watch::Receiver<bool>) -> Arc<Self> {
        Arc::new(StreamSlots {
            max: max.max(1),
            open: Mutex::default(),
            stopping,
        })
    }

    /// Turns true when the host starts shutting down.
    pub fn stopping(&self) -> watch::Receiver<bool> {
        self.stopping.clone()
    }

    /// A slot for one more stream of `token_id`, or RESOURCE_EXHAUSTED.
    pub fn open(self: &Arc<Self>, token_id: &str) -> Result<StreamSlot, Error> {
        if *self.stopping.borrow() {
            return Err(Error::Unavailable(
                "this host is shutting down; open the stream on another host or retry".into(),
            ));
        }
        let mut open = self.open.locked();
        let n = open.entry(token_id.to_string()).or_insert(0);
        if *n >= self.max {
            return Err(Error::ResourceExhausted(format!(
                "this token has {} event streams open, the limit ([http] max_streams_per_token); close one first",
                self.max
            )));
        }
        *n += 1;
        Ok(StreamSlot {
            slots: self.clone(),
            token_id: token_id.to_string(),
        })
    }

    /// Streams open for `token_id`.
    pub fn count(&self, token_id: &str) -> usize {
        self.open.locked().get(token_id).copied().unwrap_or(0)
    }

    /// `stream`, ended when the host starts shutting down, holding `slot`
    /// until it ends or the client goes away.
    pub fn guard<S>(
        &self,
        slot: StreamSlot,
        stream: S,
    ) -> impl futures::Stream<Item = S::Item> + Send + 'static
    where
        S: futures::Stream + Send + 'static,
    {
        use futures::StreamExt as _;
        let mut stopping = self.stopping.clone();
        let stopped = async move {
            let _ = stopping.wait_for(|s| *s).await;
        };
        stream.take_until(Box::pin(stopped)).map(move |item| {
            let _held = &slot;
            item
        })
    }
}

/// One open event stream of a token; given back when dropped.
pub struct StreamSlot {
    slots: Arc<StreamSlots>,
    token_id: String,
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut open = self.slots.open.locked();
        if let Some(n) = open.get_mut(&self.token_id) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&self.token_id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_slots_are_capped_per_token_and_given_back() {
        let (_tx, rx) = watch::channel(false);
        let slots = StreamSlots::new(2, rx);
        let a = slots.open("t1").unwrap();
        let _b = slots.open("t1").unwrap();
        let e = slots.open("t1").err().unwrap();
        assert!(matches!(e, Error::ResourceExhausted(_)), "{e:?}");
        // Another token has its own slots.
        let _c = slots.open("t2").unwrap();
        drop(a);
        assert_eq!(slots.count("t1"), 1);
        assert!(slots.open("t1").is_ok());
    }
}
