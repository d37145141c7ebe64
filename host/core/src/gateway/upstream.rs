//! A call upstream: the candidates tried in order with failover, the
//! response read within its caps or passed on as a stream, the call booked,
//! and the providers' breakers told (SPEC GW-1, GW-3, GW-5).

use super::*;

impl Gateway {
    /// Tries the candidates in order.
    pub(super) async fn attempt(
        self: &Arc<Self>,
        req: ChatRequest,
        plan: Plan,
        mut record: GatewayCallRow,
        reservation: Reservation,
        started: Instant,
    ) -> std::result::Result<Response, Failure> {
        let mut body = req.body;
        if req.stream {
            ask_for_usage(&mut body);
        }
        let mut notes: Vec<String> = Vec::new();
        let mut attempts = 0i64;
        let mut last: Option<(String, String)> = None;
        for (i, model) in plan.candidates {
            let provider = &self.providers[i];
            let name = provider.cfg.name.clone();
            let slot = match self.admit(provider) {
                Ok(slot) => slot,
                Err(note) => {
                    notes.push(note);
                    continue;
                }
            };
            attempts += 1;
            last = Some((name.clone(), model.clone()));
            body.insert("model".to_string(), Value::String(model.clone()));
            let payload = match serde_json::to_vec(&body) {
                Ok(p) => p,
                Err(e) => {
                    let error = Error::Internal(format!("cannot serialize a request: {e}"));
                    return Err(Failure::new(error, attempts, last));
                }
            };
            let response = match self.send(provider, payload).await {
                Ok(r) => r,
                Err(why) => {
                    self.breaker_failure(&name, &why);
                    notes.push(format!("{name}/{model}: {why}"));
                    continue;
                }
            };
            let status = response.status;
            record.attempts = attempts;
            record.provider = Some(name.clone());
            record.model = Some(model.clone());
            record.http_status = i64::from(status.as_u16());
            if is_client_error(status) {
                return Ok(self
                    .refused(provider, response, record, reservation, started)
                    .await);
            }
            if req.stream {
                self.breaker_success(&name);
                let finish = Finish {
                    provider: i,
                    record,
                    reservation,
                    prompt_estimate: req.prompt_tokens,
                    started,
                    slot,
                };
                return Ok(self.stream(response, finish, req.wants_usage));
            }
            let content_type = content_type(&response);
            let bytes = match self.read_body(response).await {
                Ok(b) => b,
                Err(why) => {
                    self.breaker_failure(&name, &why);
                    notes.push(format!("{name}/{model}: {why}"));
                    continue;
                }
            };
            self.breaker_success(&name);
            let usage = upstream_usage(&bytes, req.prompt_tokens, &mut record);
            self.book(&mut record, provider, usage, reservation, started);
            drop(slot);
            return Ok(passthrough(status, bytes, &record, &content_type));
        }
        drop(reservation);
        Err(Failure::new(exhausted(attempts, &notes), attempts, last))
    }

    /// Whether `provider` may take a call now: its breaker lets a call (or
    /// a probe) through and it has a `max_concurrent` slot free, returned
    /// to be held until the call is over (for a stream, until it ends).
    /// `Err` says why not.
    fn admit(
        &self,
        provider: &Provider,
    ) -> std::result::Result<Option<tokio::sync::OwnedSemaphorePermit>, String> {
        let max = provider.cfg.max_concurrent.unwrap_or(0);
        let now = warden_store::now_ms();
        admit_to(
            &self.breakers,
            &provider.cfg.name,
            provider.slots.as_ref(),
            max,
            now,
        )
    }

    /// Posts `payload` to `provider`: its response, when it answered in
    /// time with a success or a client error. `Err` says why not: a
    /// failure that blames the provider, so the next candidate is tried.
    async fn send(
        &self,
        provider: &Provider,
        payload: Vec<u8>,
    ) -> std::result::Result<crate::outbound::Response, String> {
        let mut request = crate::outbound::Request::new(http::Method::POST, &provider.url);
        request.headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some(auth) = &provider.auth {
            request.headers.insert(header::AUTHORIZATION, auth.clone());
        }
        request.body = Bytes::from(payload);
        let response = match tokio::time::timeout(provider.timeout, self.client.send(request)).await
        {
            Err(_) => {
                return Err(format!(
                    "no response within {} ms",
                    provider.timeout.as_millis()
                ));
            }
            Ok(Err(e)) => return Err(format!("cannot reach it: {e}")),
            Ok(Ok(r)) => r,
        };
        let status = response.status;
        // A client error blames the request: the caller answers it.
        if is_client_error(status) || status.is_success() {
            return Ok(response);
        }
        let bytes = self.read_body(response).await.unwrap_or_default();
        Err(scrub_url(
            &format!(
                "HTTP {}: {}",
                status.as_u16(),
                crate::validate::truncate(&String::from_utf8_lossy(&bytes), 200)
            ),
            &provider.url,
        ))
    }

    /// Answers a request the upstream refused (400, 413, 422). The request
    /// is at fault, not the provider: the client gets the upstream's
    /// answer as it is, and the call is booked as failed, at no cost.
    async fn refused(
        &self,
        provider: &Provider,
        response: crate::outbound::Response,
        mut record: GatewayCallRow,
        reservation: Reservation,
        started: Instant,
    ) -> Response {
        let name = &provider.cfg.name;
        let status = response.status;
        self.breaker_success(name);
        let bytes = self.read_body(response).await.unwrap_or_default();
        record.status = "failed".to_string();
        record.error = Some(scrub_url(
            &format!(
                "{name} refused the request with HTTP {}: {}",
                status.as_u16(),
                crate::validate::truncate(&String::from_utf8_lossy(&bytes), 300)
            ),
            &provider.url,
        ));
        record.latency_ms = started.elapsed().as_millis() as i64;
        reservation.settle(Amount::default());
        self.writer.send(Msg::Call(Box::new(record.clone())));
        passthrough(status, bytes, &record, "application/json")
    }

    /// Reads a whole response body under the idle timeout, up to
    /// `max_response_kib`.
    pub(super) async fn read_body(
        &self,
        response: crate::outbound::Response,
    ) -> std::result::Result<Bytes, String> {
        let idle = Duration::from_millis(self.cfg.idle_timeout_ms);
        let limit = self.cfg.max_response_kib.saturating_mul(1024);
        let over = || {
            format!(
                "the response body is over the {} KiB limit ([gateway] max_response_kib)",
                self.cfg.max_response_kib
            )
        };
        if response.content_length.is_some_and(|n| n > limit as u64) {
            return Err(over());
        }
        let read = async {
            let mut response = response;
            let mut body = bytes::BytesMut::new();
            while let Some(chunk) = response
                .chunk()
                .await
                .map_err(|e| format!("the response broke off: {e}"))?
            {
                if body.len() + chunk.len() > limit {
                    return Err(over());
                }
                body.extend_from_slice(&chunk);
            }
            Ok(body.freeze())
        };
        match tokio::time::timeout(idle, read).await {
            Ok(r) => r,
            Err(_) => Err(format!(
                "the response body did not arrive within {} ms",
                idle.as_millis()
            )),
        }
    }

    /// Books a call that got an answer: settles its reservation, queues
    /// its record (`ok` unless the caller marked it `failed`). Usage over
    /// `max_call_tokens` is booked at that, with a note in the error.
    pub(super) fn book(
        &self,
        record: &mut GatewayCallRow,
        provider: &Provider,
        usage: Usage,
        reservation: Reservation,
        started: Instant,
    ) {
        let max = self.cfg.max_call_tokens;
        let usage = match usage.capped(max) {
            Ok(u) => u,
            Err(u) => {
                let note = format!(
                    "the upstream reported {} prompt and {} completion tokens, over the {max} one call may book ([gateway] max_call_tokens); booked {} and {}",
                    usage.prompt_tokens,
                    usage.completion_tokens,
                    u.prompt_tokens,
                    u.completion_tokens
                );
                record.error = Some(match record.error.take() {
                    Some(e) => format!("{e}; {note}"),
                    None => note,
                });
                u
            }
        };
        let cost = provider.cost_micros(usage.prompt_tokens, usage.completion_tokens);
        if record.status.is_empty() {
            record.status = "ok".to_string();
        }
        record.prompt_tokens = to_i64(usage.prompt_tokens);
        record.completion_tokens = to_i64(usage.completion_tokens);
        record.cost_micros = cost;
        record.latency_ms = started.elapsed().as_millis() as i64;
        reservation.settle(Amount {
            cost_micros: cost,
            tokens: record
                .prompt_tokens
                .saturating_add(record.completion_tokens),
        });
        self.writer.send(Msg::Call(Box::new(record.clone())));
    }

    /// Passes a streamed response on, event by event, as it arrives.
    pub(super) fn stream(
        self: &Arc<Self>,
        response: crate::outbound::Response,
        finish: Finish,
        wants_usage: bool,
    ) -> Response {
        let headers = warden_headers(&finish.record);
        let pump = Pump {
            gateway: self.clone(),
            upstream: response.body,
            splitter: Splitter::default(),
            pending: std::collections::VecDeque::new(),
            idle: Duration::from_millis(self.cfg.idle_timeout_ms),
            max_event: self.cfg.max_stream_event_kib.saturating_mul(1024),
            wants_usage,
            usage: None,
            chunks: 0,
            done: false,
            finished: false,
            ended: None,
            finish: Some(finish),
        };
        let body = ReplyBody::Stream(Box::pin(futures::stream::unfold(
            pump,
            |mut pump| async move {
                pump.next()
                    .await
                    .map(|b| (Ok::<Bytes, std::io::Error>(b), pump))
            },
        )));
        let mut r = Response::new(body);
        *r.status_mut() = StatusCode::OK;
        let h = r.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream"),
        );
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        h.extend(headers);
        r
    }

    pub(super) fn breaker_success(&self, provider: &str) {
        let now = warden_store::now_ms();
        let mut breakers = self.breakers.locked();
        let b = breakers.entry(provider.to_string()).or_default();
        if b.success(now) == Change::Closed {
            let row = b.row(&format!("provider:{provider}"));
            drop(breakers);
            tracing::info!(provider, "provider breaker closed: a probe succeeded");
            self.writer.send(Msg::Breaker { row, opened: false });
        }
    }

    pub(super) fn breaker_failure(&self, provider: &str, why: &str) {
        tracing::warn!(provider, error = why, "provider call failed");
        let now = warden_store::now_ms();
        let mut breakers = self.breakers.locked();
        let b = breakers.entry(provider.to_string()).or_default();
        if let Change::Opened { reason, .. } = b.failure(now, &self.breaker_policy, why) {
            let row = b.row(&format!("provider:{provider}"));
            drop(breakers);
            tracing::warn!(provider, reason, "provider breaker opened");
            self.writer.send(Msg::Breaker { row, opened: true });
        }
    }

    /// Takes breaker states written by operators or other hosts.
    pub(super) async fn sync_breakers(&self) {
        let rows = match self.store.list_breakers().await {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(error = %e, "cannot read breakers");
                return;
            }
        };
        let mut breakers = self.breakers.locked();
        for row in rows {
            if let Some(name) = row.name.strip_prefix("provider:")
                && self.providers.iter().any(|p| p.cfg.name == name)
                && breakers.entry(name.to_string()).or_default().adopt(&row)
            {
                tracing::info!(provider = name, state = %row.state, "provider breaker changed elsewhere");
            } else if self.policies.adopt_breaker(&row) {
                tracing::info!(breaker = %row.name, state = %row.state, "routing policy breaker changed elsewhere");
            }
        }
    }
}

/// Asks a streamed request for the usage chunk whatever the client asked:
/// it is what the call is booked from.
fn ask_for_usage(body: &mut Map<String, Value>) {
    let options = body
        .entry("stream_options")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Some(o) = options.as_object_mut() {
        o.insert("include_usage".to_string(), Value::Bool(true));
    }
}

/// A response's content type, `application/json` when it has none.
fn content_type(response: &crate::outbound::Response) -> String {
    response
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .to_string()
}

/// The usage a plain answer reports; estimated (and noted in `record`)
/// when it reports none.
fn upstream_usage(bytes: &[u8], prompt_tokens: u64, record: &mut GatewayCallRow) -> Usage {
    let usage = serde_json::from_slice::<UsageOnly>(bytes)
        .ok()
        .and_then(|u| u.usage);
    match usage {
        Some(u) => u,
        None => {
            record.error = Some("the upstream sent no usage; tokens estimated".to_string());
            Usage {
                prompt_tokens,
                completion_tokens: (bytes.len() as u64).div_ceil(4),
            }
        }
    }
}

/// Why no candidate answered: none could be tried, or every one tried
/// failed.
fn exhausted(attempts: i64, notes: &[String]) -> Error {
    if attempts == 0 {
        Error::Unavailable(format!(
            "no candidate could take the request: {}",
            notes.join("; ")
        ))
    } else {
        Error::Unavailable(format!(
            "every candidate failed ({attempts} tried): {}",
            notes.join("; ")
        ))
    }
}

/// [`Gateway::admit`] on the breakers it reads: the breaker of `name` is
/// asked first, then one of its `slots` (of `max`) is taken. A probe that
/// finds no slot free was never sent: it is given back and the breaker
/// stays half-open, so the next call probes; it says nothing of the
/// provider's health, so it neither closes nor reopens the breaker.
fn admit_to(
    breakers: &Mutex<HashMap<String, Breaker>>,
    name: &str,
    slots: Option<&Arc<Semaphore>>,
    max: impl std::fmt::Display,
    now: i64,
) -> std::result::Result<Option<tokio::sync::OwnedSemaphorePermit>, String> {
    let probe = match breakers
        .locked()
        .entry(name.to_string())
        .or_default()
        .admit(now)
    {
        Admit::Pass => false,
        Admit::Probe => true,
        Admit::Refuse { retry_at } => {
            return Err(format!(
                "{name}: breaker open until {}",
                crate::time::time(retry_at)
            ));
        }
    };
    let Some(slots) = slots else {
        return Ok(None);
    };
    match slots.clone().try_acquire_owned() {
        Ok(permit) => Ok(Some(permit)),
        Err(_) => {
            if probe && let Some(b) = breakers.locked().get_mut(name) {
                b.release_probe();
            }
            Err(format!("{name}: at its max_concurrent of {max}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::breaker::State;

    /// Regression: a probe admitted while the provider was at its
    /// `max_concurrent` was counted as a success, so a breaker opened by
    /// failures closed without a single call reaching the provider.
    #[test]
    fn a_probe_that_finds_no_free_slot_leaves_the_breaker_half_open() {
        let policy = BreakerPolicy::default();
        let mut b = Breaker::default();
        let mut now = 0;
        while b.state() != State::Open {
            now += 1;
            assert!(now < 100, "the breaker opens after some failures");
            b.failure(now, &policy, "HTTP 503");
        }
        let retry_at = b.retry_at().unwrap_or(now);
        let breakers = Mutex::new(HashMap::from([("p".to_string(), b)]));
        let slots = Arc::new(Semaphore::new(1));
        let busy = slots.clone().try_acquire_owned();
        assert!(busy.is_ok(), "a running call holds the one slot");

        let refused = admit_to(&breakers, "p", Some(&slots), 1, retry_at);
        assert_eq!(
            refused.err().as_deref(),
            Some("p: at its max_concurrent of 1")
        );
        let state = |b: &Mutex<HashMap<String, Breaker>>| b.locked()["p"].state();
        assert_eq!(
            state(&breakers),
            State::HalfOpen,
            "not closed by a call never made"
        );

        // The slot frees: the next call is the probe, and only its
        // outcome decides.
        drop(busy);
        let probe = admit_to(&breakers, "p", Some(&slots), 1, retry_at + 1);
        assert!(matches!(probe, Ok(Some(_))), "{probe:?}");
        assert_eq!(state(&breakers), State::HalfOpen);
        let again = admit_to(&breakers, "p", Some(&slots), 1, retry_at + 2);
        assert!(
            again
                .as_ref()
                .err()
                .is_some_and(|e| e.contains("breaker open")),
            "one probe at a time: {again:?}"
        );
    }
}
