//! One connection to the platform: uploads go out through the window, 9014s come back, and the
//! platform's own requests (history pull, get/set time) are answered on the same socket.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::protocol::hj212::{
    encode, format_data_time, masked, DecodeErrorKind, FrameError, Framer, Packet,
};
use crate::sink::hj212::upload::group_periods;

use super::forwarder::{cn_label, HistoryJob, Uplink};
use super::history::{stored_window, HISTORY_LIMIT};
use super::requests::{
    classify, execution_result, request_answer, system_time, ExeRtn, Identity, Incoming, QnRtn,
};
use super::window::{Acked, Expiry, Purpose, Send};
use crate::sink::stop::stop_requested;

/// How a session ended.
pub(super) enum End {
    Stopped,
    Lost(Lost),
}

/// Why a connection to the platform was given up; the uplink reconnects after it.
#[derive(Debug, thiserror::Error)]
pub(super) enum Lost {
    #[error("the platform closed the connection")]
    Closed,
    #[error("read failed: {0}")]
    Read(std::io::Error),
    #[error("write failed: {0}")]
    Write(std::io::Error),
    #[error("the platform took no data for {0:?}")]
    WriteStalled(Duration),
    #[error("no 9014 for QN {qn} after {retries} resends")]
    NoAck { qn: String, retries: u32 },
}

impl Uplink {
    pub(super) async fn session(
        &mut self,
        stream: TcpStream,
        shutdown: &mut watch::Receiver<bool>,
    ) -> End {
        let (mut read, mut write) = stream.into_split();
        let mut framer = Framer::new();
        let mut buf = vec![0u8; 8192];
        let mut next_realtime = self.settings.realtime_interval.map(|d| Instant::now() + d);
        loop {
            if stop_requested(shutdown) {
                return End::Stopped;
            }
            self.fill().await;
            let sends = self
                .window
                .unsent(Instant::now(), self.settings.ack_timeout);
            if let Err(e) = self.write_sends(&mut write, sends).await {
                return End::Lost(e);
            }
            self.save_cursor().await;

            let deadline = self.window.next_deadline();
            let poll_at = self.idle_until.filter(|_| self.window.has_room());
            let far = Instant::now() + Duration::from_secs(3600);
            tokio::select! {
                n = read.read(&mut buf) => match n {
                    Ok(0) => return End::Lost(Lost::Closed),
                    Ok(n) => {
                        framer.push(&buf[..n]);
                        while let Some(frame) = framer.next_packet() {
                            match frame {
                                Ok(frame) => {
                                    if let Err(e) = self.handle(frame.packet, &mut write).await {
                                        return End::Lost(e);
                                    }
                                }
                                Err(e) => self.unreadable(&e),
                            }
                        }
                    }
                    Err(e) => return End::Lost(Lost::Read(e)),
                },
                () = tokio::time::sleep_until(deadline.unwrap_or(far)), if deadline.is_some() => {
                    match self.window.expire(Instant::now(), self.settings.ack_timeout, self.settings.retries) {
                        Expiry::Resend { sends, timeouts } => {
                            for _ in 0..timeouts {
                                self.stats.timed_out();
                            }
                            if let Err(e) = self.write_sends(&mut write, sends).await {
                                return End::Lost(e);
                            }
                        }
                        Expiry::Broken { qn, timeouts } => {
                            for _ in 0..timeouts {
                                self.stats.timed_out();
                            }
                            return End::Lost(Lost::NoAck {
                                qn,
                                retries: self.settings.retries,
                            });
                        }
                    }
                }
                () = tokio::time::sleep_until(next_realtime.unwrap_or(far)), if next_realtime.is_some() => {
                    next_realtime = self.settings.realtime_interval.map(|d| Instant::now() + d);
                    if let Err(e) = self.send_realtime(&mut write).await {
                        return End::Lost(e);
                    }
                }
                () = tokio::time::sleep_until(poll_at.unwrap_or(far)), if poll_at.is_some() => {
                    self.idle_until = None;
                }
                changed = shutdown.changed() => {
                    if changed.is_err() || *shutdown.borrow() {
                        return End::Stopped;
                    }
                }
            }
        }
    }

    async fn write_sends(
        &mut self,
        write: &mut OwnedWriteHalf,
        sends: Vec<Send>,
    ) -> Result<(), Lost> {
        for send in sends {
            self.write_bytes(write, &send.bytes).await?;
            if send.resend {
                self.stats.resent();
            } else {
                self.stats.sent(send.cn, send.parts);
            }
        }
        Ok(())
    }

    async fn write_bytes(&mut self, write: &mut OwnedWriteHalf, bytes: &[u8]) -> Result<(), Lost> {
        write_within(write, bytes, self.settings.ack_timeout).await
    }

    /// Sends a reply that needs no ack.
    async fn reply(&mut self, write: &mut OwnedWriteHalf, packet: &Packet) -> Result<(), Lost> {
        match encode(packet) {
            Ok(bytes) => {
                self.write_bytes(write, &bytes).await?;
                self.stats.sent(cn_label(packet.cn.code()), 1);
                Ok(())
            }
            Err(e) => {
                tracing::error!(sink = %self.settings.name, cn = %packet.cn, "cannot encode a reply: {e}");
                Ok(())
            }
        }
    }

    async fn send_realtime(&mut self, write: &mut OwnedWriteHalf) -> Result<(), Lost> {
        for upload in self.realtime_uploads().await {
            if self.settings.realtime_ack {
                self.window.push(upload);
            } else {
                self.write_bytes(write, &upload.bytes()).await?;
                self.stats.sent(upload.cn, upload.parts.len() as u64);
            }
        }
        Ok(())
    }

    async fn handle(&mut self, packet: Packet, write: &mut OwnedWriteHalf) -> Result<(), Lost> {
        let mns: Vec<String> = self
            .settings
            .points
            .iter()
            .map(|(_, mn)| mn.clone())
            .collect();
        let password = self.settings.password.expose().to_string();
        let incoming = classify(
            &packet,
            &Identity {
                password: &password,
                mns: &mns,
                st: self.settings.st,
                offset: self.settings.offset,
            },
        );
        match incoming {
            Incoming::Ack { qn } => self.acked(&qn, write, &password).await,
            Incoming::Ignore { reason, why } => {
                self.stats.ignored(reason);
                tracing::info!(sink = %self.settings.name, reason, cn = %packet.cn, qn = ?packet.qn, "platform packet not answered: {why}");
                Ok(())
            }
            Incoming::Reject { qn, mn, rtn, why } => {
                self.stats.rejected(rtn.reason());
                tracing::warn!(sink = %self.settings.name, cn = %packet.cn, qn = ?qn, qn_rtn = rtn as u16, "refused a platform request: {why}");
                let mn = mn
                    .filter(|m| !m.is_empty() && m.len() <= 24)
                    .or_else(|| mns.first().cloned())
                    .unwrap_or_default();
                let answer = request_answer(qn.as_deref(), &mn, &password, rtn);
                self.reply(write, &answer).await
            }
            Incoming::GetTime { qn, mn } => {
                let now = (self.clock)();
                self.reply(
                    write,
                    &request_answer(Some(&qn), &mn, &password, QnRtn::Ready),
                )
                .await?;
                let time = system_time(
                    &qn,
                    &mn,
                    &password,
                    self.settings.st,
                    now,
                    self.settings.offset,
                );
                self.reply(write, &time).await?;
                self.reply(
                    write,
                    &execution_result(&qn, &mn, &password, ExeRtn::Success),
                )
                .await
            }
            Incoming::SetTime { qn, mn, time } => {
                let now = (self.clock)();
                let offset_ms = time.millis() - now.millis();
                tracing::warn!(sink = %self.settings.name, mn = %mn, requested = %format_data_time(self.settings.offset.local_time(time)), offset_ms, "the platform asks to set the device time; recorded, the system clock is left to NTP");
                self.reply(
                    write,
                    &request_answer(Some(&qn), &mn, &password, QnRtn::Ready),
                )
                .await?;
                self.reply(
                    write,
                    &execution_result(&qn, &mn, &password, ExeRtn::Success),
                )
                .await
            }
            Incoming::History {
                qn,
                mn,
                kind,
                from,
                to,
            } => {
                self.stats.history_request();
                self.reply(
                    write,
                    &request_answer(Some(&qn), &mn, &password, QnRtn::Ready),
                )
                .await?;
                let point = self.settings.point_of(&mn).unwrap_or_default().to_string();
                let records =
                    match stored_window(self.store_path.clone(), kind, point.clone(), from, to)
                        .await
                    {
                        Ok(records) => records,
                        Err(e) => {
                            tracing::error!(sink = %self.settings.name, "cannot read history: {e}");
                            Vec::new()
                        }
                    };
                if records.len() >= HISTORY_LIMIT {
                    tracing::warn!(sink = %self.settings.name, point = %point, "history pull over {HISTORY_LIMIT} records; answering with the first {HISTORY_LIMIT}");
                }
                let id = self.next_job;
                self.next_job += 1;
                let mut open = 0;
                for group in group_periods(&records) {
                    match self.upload_of(&group, Purpose::History { job: id }) {
                        Ok(upload) => {
                            self.history.push_back(upload);
                            open += 1;
                        }
                        Err(e) => {
                            tracing::error!(sink = %self.settings.name, "cannot encode a history upload: {e}")
                        }
                    }
                }
                tracing::info!(sink = %self.settings.name, point = %point, kind = %kind, from = %from, to = %to, uploads = open, "history pull");
                if open == 0 {
                    return self
                        .reply(
                            write,
                            &execution_result(&qn, &mn, &password, ExeRtn::NoData),
                        )
                        .await;
                }
                self.jobs.push(HistoryJob { id, qn, mn, open });
                Ok(())
            }
        }
    }

    /// A packet from the platform that could not be read: counted by reason and logged with
    /// its bytes, the password masked.
    fn unreadable(&self, error: &FrameError) {
        let reason = match error.error.kind {
            DecodeErrorKind::BadCrc { .. }
            | DecodeErrorKind::BadCrcDigits
            | DecodeErrorKind::MissingCrc => "crc",
            DecodeErrorKind::BadLength { .. }
            | DecodeErrorKind::BadLengthDigits
            | DecodeErrorKind::TooLong { .. }
            | DecodeErrorKind::Truncated { .. } => "length",
            DecodeErrorKind::BadHeader | DecodeErrorKind::NotAPacket { .. } => "garbage",
            DecodeErrorKind::MissingCpDelimiter
            | DecodeErrorKind::UnknownCommand(_)
            | DecodeErrorKind::MissingField(_)
            | DecodeErrorKind::BadField { .. } => "syntax",
        };
        self.stats.ignored(reason);
        tracing::warn!(sink = %self.settings.name, reason, error = %error.error, packet = %masked(&error.raw, 300), "unreadable packet from the platform, not answered");
    }

    async fn acked(
        &mut self,
        qn: &str,
        write: &mut OwnedWriteHalf,
        password: &str,
    ) -> Result<(), Lost> {
        let upload = match self.window.ack(qn) {
            Acked::Upload(upload) => upload,
            Acked::Part => {
                self.stats.acked();
                return Ok(());
            }
            Acked::Unknown => {
                self.stats.ignored("unmatched_ack");
                tracing::warn!(sink = %self.settings.name, qn, "9014 for a QN not waiting for an ack (a repeated ack, one from before a reconnect, or a platform echoing a QN we did not send)");
                return Ok(());
            }
        };
        self.stats.acked();
        self.backoff.reset();
        match upload.purpose {
            Purpose::Backlog { first_seq } => self.progress.acked(first_seq),
            Purpose::Realtime => {}
            Purpose::History { job } => {
                let Some(index) = self.jobs.iter().position(|j| j.id == job) else {
                    return Ok(());
                };
                self.jobs[index].open -= 1;
                if self.jobs[index].open == 0 {
                    let done = self.jobs.remove(index);
                    let result = execution_result(&done.qn, &done.mn, password, ExeRtn::Success);
                    self.reply(write, &result).await?;
                }
            }
        }
        Ok(())
    }
}

/// Writes within `limit` (the ack timeout): a platform that stops reading is a broken
/// connection.
async fn write_within(
    write: &mut OwnedWriteHalf,
    bytes: &[u8],
    limit: Duration,
) -> Result<(), Lost> {
    match tokio::time::timeout(limit, write.write_all(bytes)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(Lost::Write(e)),
        Err(_) => Err(Lost::WriteStalled(limit)),
    }
}
