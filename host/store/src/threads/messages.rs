//! Posting and reading a thread's messages, the readers' cursors and the
//! thread's audit trail.

use super::*;

impl Store {
    /// Posts a message: the next seq of the thread, allocated in the
    /// transaction that inserts the message (see the module's doc).
    ///
    /// With an idempotency key already used by the same sender in the
    /// thread, returns the original message with `replay` true and writes
    /// nothing, even when the two posts race and even when the thread was
    /// closed since. Errors: [`Error::TooLarge`] for a body over
    /// [`MAX_BODY_BYTES`], [`Error::NotFound`] for no such thread,
    /// [`Error::NotParticipant`] for a sender or recipient that is not a
    /// participant, [`Error::ThreadClosed`] for a closed thread.
    pub async fn post_thread_message(&self, message: &NewMessage) -> Result<Posted> {
        let body = json_text(&message.body);
        if body.len() > MAX_BODY_BYTES {
            return Err(Error::TooLarge {
                what: "message body",
                size: body.len(),
                max: MAX_BODY_BYTES,
            });
        }
        // A retry finds its message without waiting for the thread's lock.
        if let Some(original) = self.message_by_key(message).await? {
            return Ok(Posted {
                message: original,
                replay: true,
            });
        }
        let (state, names) = self
            .thread_state_and_participants(&message.workspace, &message.thread_id)
            .await?;
        if state == ThreadState::Closed {
            return Err(self.closed_or_missing(message).await);
        }
        let recipients = message.recipients.as_ref().map(|r| {
            let mut unique: Vec<String> = Vec::with_capacity(r.len());
            for name in r {
                if !unique.contains(name) {
                    unique.push(name.clone());
                }
            }
            unique
        });
        // Participants are never removed: checked before the lock, they
        // are still participants when the message commits.
        let everyone = std::iter::once(&message.sender).chain(recipients.iter().flatten());
        for name in everyone {
            if !names.contains(name) {
                return Err(Error::NotParticipant {
                    thread: message.thread_id.clone(),
                    name: name.clone(),
                });
            }
        }

        let mut tx = self.begin_write().await?;
        // The increment locks the thread until commit; a closed thread
        // matches nothing (PostgreSQL re-checks the state once it holds
        // the lock, so a concurrent close is seen).
        let seq: Option<i64> = sqlx::query_scalar(
            "UPDATE threads SET last_seq = last_seq + 1, \
             updated_at = CASE WHEN updated_at < $3 THEN $3 ELSE updated_at END \
             WHERE workspace = $1 AND id = $2 AND state <> $4 RETURNING last_seq",
        )
        .bind(&message.workspace)
        .bind(&message.thread_id)
        .bind(message.at)
        .bind(ThreadState::Closed.as_str())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(seq) = seq else {
            tx.rollback().await?;
            return Err(self.closed_or_missing(message).await);
        };
        let inserted = sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO thread_messages (thread_id, seq, workspace, schema_version, sender, \
             recipients, kind, body, idempotency_key, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING {MESSAGE_RETURNING}"
        )))
        .bind(&message.thread_id)
        .bind(seq)
        .bind(&message.workspace)
        .bind(message.schema_version)
        .bind(&message.sender)
        .bind(recipients.as_deref().map(strings_text))
        .bind(message.kind.as_str())
        .bind(&body)
        .bind(message.idempotency_key.as_deref())
        .bind(message.at)
        .fetch_one(&mut *tx)
        .await;
        match inserted {
            Ok(row) => {
                let posted = message_from_row(&row)?;
                if self.dialect == Dialect::Postgres {
                    // Delivered at commit, and only if it commits.
                    let notice = ThreadNotice {
                        workspace: posted.workspace.clone(),
                        thread_id: posted.thread_id.clone(),
                        seq: posted.seq,
                    };
                    pg_notify(&mut tx, MESSAGES_CHANNEL, &notice.payload()).await?;
                }
                tx.commit().await?;
                Ok(Posted {
                    message: posted,
                    replay: false,
                })
            }
            Err(e) if is_unique_violation(&e) => {
                // A post with the same key committed while this one waited
                // for the lock: give its message, and undo the increment.
                tx.rollback().await?;
                match self.message_by_key(message).await? {
                    Some(original) => Ok(Posted {
                        message: original,
                        replay: true,
                    }),
                    None => Err(e.into()),
                }
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Message `seq` of a thread.
    pub async fn get_thread_message(
        &self,
        workspace: &str,
        id: &str,
        seq: i64,
    ) -> Result<Option<MessageRow>> {
        sqlx::query(AssertSqlSafe(format!(
            "SELECT {MESSAGE_COLUMNS} FROM thread_messages m \
             WHERE m.workspace = $1 AND m.thread_id = $2 AND m.seq = $3"
        )))
        .bind(workspace)
        .bind(id)
        .bind(seq)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(message_from_row)
        .transpose()
    }

    /// The messages of a thread with `seq > after`, in seq order: a cursor
    /// read (TH-2). With `for_participant`, only those it may read
    /// (broadcasts, and directed messages it sent or receives); without,
    /// all of them (an operator's view).
    ///
    /// A `limit` of 0 or less means [`DEFAULT_READ_LIMIT`] (100); at most
    /// [`MAX_READ_LIMIT`] (500) are returned: read again after the last
    /// seq for more. [`Error::NotFound`] for no such thread.
    pub async fn thread_messages_after(
        &self,
        workspace: &str,
        id: &str,
        after: i64,
        limit: i64,
        for_participant: Option<&str>,
    ) -> Result<Vec<MessageRow>> {
        let mut sql = Sql::new("");
        let (ws, thread, after) = (sql.arg(workspace), sql.arg(id), sql.arg(after));
        let mut text = format!(
            "SELECT {MESSAGE_COLUMNS} FROM thread_messages m \
             WHERE m.workspace = {ws} AND m.thread_id = {thread} AND m.seq > {after}"
        );
        if let Some(participant) = for_participant {
            let p = sql.arg(participant);
            text.push_str(&format!(
                " AND (m.sender = {p} OR {})",
                addressed_to(self.dialect, &p)
            ));
        }
        let limit = sql.arg(clamp_limit(limit, DEFAULT_READ_LIMIT, MAX_READ_LIMIT));
        text.push_str(&format!(" ORDER BY m.seq LIMIT {limit}"));
        sql.push(&text);
        let rows = sql.build()?.fetch_all(&self.pool).await?;
        if rows.is_empty() {
            self.require_thread(workspace, id).await?;
        }
        rows.iter().map(message_from_row).collect()
    }

    /// Marks a thread read by `participant` up to `seq` at `at`. The
    /// cursor never moves back: a lower `seq` (or an earlier `at`) than
    /// stored keeps the stored one. `seq` is capped at the thread's newest
    /// message. Returns the cursor as stored.
    ///
    /// [`Error::NotFound`] for no such thread, [`Error::NotParticipant`]
    /// for a reader that is not a participant.
    pub async fn mark_thread_read(
        &self,
        workspace: &str,
        id: &str,
        participant: &str,
        seq: i64,
        at: i64,
    ) -> Result<ReadCursor> {
        let row = sqlx::query(
            "INSERT INTO thread_cursors (thread_id, participant, last_read_seq, read_at) \
             SELECT t.id, p.name, CASE WHEN $4 < t.last_seq THEN $4 ELSE t.last_seq END, $5 \
             FROM threads t JOIN thread_participants p ON p.thread_id = t.id AND p.name = $3 \
             WHERE t.workspace = $1 AND t.id = $2 \
             ON CONFLICT (thread_id, participant) DO UPDATE SET \
             last_read_seq = CASE WHEN excluded.last_read_seq > thread_cursors.last_read_seq \
             THEN excluded.last_read_seq ELSE thread_cursors.last_read_seq END, \
             read_at = CASE WHEN excluded.read_at > thread_cursors.read_at \
             THEN excluded.read_at ELSE thread_cursors.read_at END \
             RETURNING last_read_seq, read_at",
        )
        .bind(workspace)
        .bind(id)
        .bind(participant)
        .bind(seq.max(0))
        .bind(at)
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some(row) => Ok(ReadCursor {
                last_read_seq: row.try_get("last_read_seq")?,
                read_at: row.try_get("read_at")?,
            }),
            None => {
                self.require_thread(workspace, id).await?;
                Err(Error::NotParticipant {
                    thread: id.to_string(),
                    name: participant.to_string(),
                })
            }
        }
    }

    /// How many messages `participant` has not read: after its cursor,
    /// addressed to it (broadcasts and messages directed to it), not sent
    /// by it.
    ///
    /// [`Error::NotFound`] for no such thread, [`Error::NotParticipant`]
    /// for a name that is not a participant.
    pub async fn thread_unread_count(
        &self,
        workspace: &str,
        id: &str,
        participant: &str,
    ) -> Result<i64> {
        let cursors = self.thread_cursors(workspace, id).await?;
        cursors
            .iter()
            .find(|c| c.participant == participant)
            .map(|c| c.unread)
            .ok_or_else(|| Error::NotParticipant {
                thread: id.to_string(),
                name: participant.to_string(),
            })
    }

    /// Every participant of a thread with its read cursor and unread count
    /// (see [`Store::thread_unread_count`]), in the order they joined.
    /// [`Error::NotFound`] for no such thread.
    pub async fn thread_cursors(
        &self,
        workspace: &str,
        id: &str,
    ) -> Result<Vec<ParticipantCursor>> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT p.name, p.kind, p.role, c.last_read_seq, c.read_at, \
             (SELECT CAST(COUNT(*) AS BIGINT) FROM thread_messages m \
              WHERE m.thread_id = p.thread_id AND m.sender <> p.name \
              AND m.seq > COALESCE(c.last_read_seq, 0) AND {}) AS unread \
             FROM thread_participants p JOIN threads t ON t.id = p.thread_id \
             LEFT JOIN thread_cursors c ON c.thread_id = p.thread_id AND c.participant = p.name \
             WHERE t.workspace = $1 AND t.id = $2 ORDER BY p.position",
            addressed_to(self.dialect, "p.name")
        )))
        .bind(workspace)
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        if rows.is_empty() {
            self.require_thread(workspace, id).await?;
        }
        rows.iter()
            .map(|row| {
                Ok(ParticipantCursor {
                    participant: row.try_get("name")?,
                    kind: get_name(row, "thread_participants.kind")?,
                    role: row.try_get("role")?,
                    last_read_seq: row.try_get::<Option<i64>, _>("last_read_seq")?.unwrap_or(0),
                    read_at: row.try_get("read_at")?,
                    unread: row.try_get("unread")?,
                })
            })
            .collect()
    }

    /// Who has not read message `seq` yet: the participants it is
    /// addressed to (everyone for a broadcast, its recipients otherwise),
    /// but its sender, whose cursor is below `seq`. In the order they
    /// joined. [`Error::NotFound`] for no such thread or message.
    pub async fn thread_message_unread_by(
        &self,
        workspace: &str,
        id: &str,
        seq: i64,
    ) -> Result<Vec<String>> {
        let message = self
            .get_thread_message(workspace, id, seq)
            .await?
            .ok_or_else(|| Error::NotFound(format!("message {seq} of thread \"{id}\"")))?;
        let cursors = self.thread_cursors(workspace, id).await?;
        Ok(cursors
            .into_iter()
            .filter(|c| c.participant != message.sender)
            .filter(|c| message.is_addressed_to(&c.participant))
            .filter(|c| c.last_read_seq < seq)
            .map(|c| c.participant)
            .collect())
    }

    /// The audit trail of a thread (creation, participants, state
    /// changes), newest first.
    ///
    /// A `limit` of 0 or less means 100; at most 500 are returned.
    pub async fn list_thread_audit(
        &self,
        workspace: &str,
        id: &str,
        limit: i64,
    ) -> Result<Vec<AuditRow>> {
        let rows = sqlx::query(
            "SELECT id, at, actor, workspace, action, target, detail FROM audit_log \
             WHERE target = $2 AND workspace = $1 AND action LIKE 'thread.%' \
             ORDER BY id DESC LIMIT $3",
        )
        .bind(workspace)
        .bind(id)
        .bind(clamp_limit(limit, DEFAULT_AUDIT_LIMIT, MAX_AUDIT_LIMIT))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(audit_from_row).collect()
    }

    /// The message posted by `message.sender` with `message`'s key, if any.
    async fn message_by_key(&self, message: &NewMessage) -> Result<Option<MessageRow>> {
        let Some(key) = &message.idempotency_key else {
            return Ok(None);
        };
        sqlx::query(AssertSqlSafe(format!(
            "SELECT {MESSAGE_COLUMNS} FROM thread_messages m WHERE m.thread_id = $1 \
             AND m.sender = $2 AND m.idempotency_key = $3 AND m.workspace = $4"
        )))
        .bind(&message.thread_id)
        .bind(&message.sender)
        .bind(key)
        .bind(&message.workspace)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(message_from_row)
        .transpose()
    }

    /// A thread's state and participants' names; [`Error::NotFound`] for
    /// no such thread.
    async fn thread_state_and_participants(
        &self,
        workspace: &str,
        id: &str,
    ) -> Result<(ThreadState, Vec<String>)> {
        let rows = sqlx::query(
            "SELECT t.state, p.name FROM threads t \
             LEFT JOIN thread_participants p ON p.thread_id = t.id \
             WHERE t.workspace = $1 AND t.id = $2",
        )
        .bind(workspace)
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        let Some(first) = rows.first() else {
            return Err(not_found(id));
        };
        let state = get_name(first, "threads.state")?;
        let names = rows
            .iter()
            .filter_map(|row| row.try_get::<Option<String>, _>("name").transpose())
            .collect::<std::result::Result<Vec<String>, _>>()?;
        Ok((state, names))
    }

    /// The error of a post that found its thread closed: closed, or not
    /// found when it is gone, or the database error of asking.
    async fn closed_or_missing(&self, message: &NewMessage) -> Error {
        match self
            .require_thread(&message.workspace, &message.thread_id)
            .await
        {
            Ok(_) => Error::ThreadClosed {
                thread: message.thread_id.clone(),
            },
            Err(e) => e,
        }
    }

    /// The thread; [`Error::NotFound`] when there is none.
    pub(super) async fn require_thread(&self, workspace: &str, id: &str) -> Result<ThreadRow> {
        self.get_thread(workspace, id)
            .await?
            .ok_or_else(|| not_found(id))
    }
}
