//! The e-mail sink: every change a user must sign out and back in for is mailed to the user's
//! current address (read from `users` when the mail is sent), through an SMTP relay with lettre.
//!
//! - `smtp://` submits with STARTTLS (required), `smtps://` over TLS from the first byte;
//!   credentials come from the URL's user and password. Plaintext is possible only to a loopback
//!   relay and only when explicitly allowed.
//! - The subject and the text come from the event's notice; the mail has a plain-text part and an
//!   HTML part. Its Message-ID is `<event id@sender's domain>`, so a mail sent twice (delivery is
//!   at least once) can be recognised as the same.
//! - A USER_DELETED event is not mailed: the user's row, and with it the address, is gone when the
//!   event is committed, and a deleted user has no session left to end. Likewise, an event whose
//!   user was deleted before the mail went out is skipped. A recipient the relay refuses for good
//!   (a permanent 5xx answer) is skipped with the error kept; everything else is retried.

use std::time::Duration;

use anyhow::{Context, bail};
use lettre::message::{Mailbox, MultiPart, SinglePart, header};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::worker::{Outcome, Sink};
use crate::domain::change::ChangeEvent;
use crate::domain::change::ChangeKind;
use crate::domain::ids::AccountId;
use crate::domain::phone_number::E164;
use crate::error::Result;
use crate::store::Store;

/// The relay and the sender, from the configuration.
#[derive(Debug, Clone)]
pub struct MailSettings {
    pub smtp_url: String,
    pub from: String,
    /// Allows `smtp://` without TLS, to a loopback relay only.
    pub allow_plaintext_loopback: bool,
}

pub struct MailSink {
    store: Store,
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    domain: String,
}

impl MailSink {
    /// Checks the settings and prepares the transport (it connects per mail).
    pub fn new(store: Store, settings: &MailSettings, timeout: Duration) -> anyhow::Result<Self> {
        let from: Mailbox = settings
            .from
            .parse()
            .with_context(|| format!("--mail-from {:?} is not an e-mail address", settings.from))?;
        let domain = from.email.domain().to_owned();
        Ok(Self {
            store,
            transport: transport(settings, timeout)?,
            from,
            domain,
        })
    }

    fn message(&self, event: &ChangeEvent, to: &str) -> Result<Message, String> {
        let to: Mailbox = to
            .parse()
            .map_err(|e| format!("the user's address {to:?} is not usable: {e}"))?;
        let (subject, text, html) = compose(event);
        Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(subject)
            .message_id(Some(format!("<{}@{}>", event.event_id, self.domain)))
            .multipart(
                MultiPart::alternative()
                    .singlepart(
                        SinglePart::builder()
                            .header(header::ContentType::TEXT_PLAIN)
                            .header(header::ContentTransferEncoding::Base64)
                            .body(text),
                    )
                    .singlepart(
                        SinglePart::builder()
                            .header(header::ContentType::TEXT_HTML)
                            .header(header::ContentTransferEncoding::Base64)
                            .body(html),
                    ),
            )
            .map_err(|e| format!("cannot build the mail: {e}"))
    }
}

fn transport(
    settings: &MailSettings,
    timeout: Duration,
) -> anyhow::Result<AsyncSmtpTransport<Tokio1Executor>> {
    let url = url::Url::parse(&settings.smtp_url).context("--smtp-url is not a URL")?;
    let host = match url.host() {
        Some(url::Host::Domain(name)) => name.to_owned(),
        Some(url::Host::Ipv4(ip)) => ip.to_string(),
        Some(url::Host::Ipv6(ip)) => ip.to_string(),
        None => bail!("--smtp-url must name a host"),
    };
    let loopback = host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    let mut builder = match url.scheme() {
        "smtps" => AsyncSmtpTransport::<Tokio1Executor>::relay(&host)?,
        "smtp" if settings.allow_plaintext_loopback => {
            if !loopback {
                bail!("plaintext SMTP is allowed only to a loopback relay, and {host} is not one");
            }
            AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&host).port(25)
        }
        "smtp" => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&host)?,
        other => bail!("--smtp-url must be smtp:// (STARTTLS) or smtps:// (TLS), not {other}://"),
    };
    if let Some(port) = url.port() {
        builder = builder.port(port);
    }
    if !url.username().is_empty() {
        let user = percent_decode(url.username());
        let password = percent_decode(url.password().unwrap_or(""));
        builder = builder.credentials(Credentials::new(user, password));
    }
    Ok(builder.timeout(Some(timeout)).build())
}

fn percent_decode(raw: &str) -> String {
    url::form_urlencoded::parse(format!("x={raw}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// Subject, plain text and HTML of the mail for `event`, in the words of its notice.
pub fn compose(event: &ChangeEvent) -> (String, String, String) {
    let subject = match event
        .kind
        .known()
        .unwrap_or(ChangeKind::UserSignOutRequested)
    {
        ChangeKind::PhoneNumberAssigned => {
            format!(
                "Your business calling number is now {}",
                event.e164_phone_number.as_ref().map_or("", E164::as_str)
            )
        }
        ChangeKind::PhoneNumberUnassigned => {
            "Your business calling number has been removed".to_owned()
        }
        ChangeKind::TelephonySettingsUpdated => {
            "Your calling and SMS permissions have changed".to_owned()
        }
        _ => "Please sign out and sign back in".to_owned(),
    };
    let closing = "To pick up the change, sign out of the calling app and sign back in.";
    let text = format!(
        "{}\n\n{closing}\n\nChange {} of {}.\n",
        event.notice,
        event.sequence,
        event.occur_time.format("%Y-%m-%d %H:%M UTC")
    );
    let html = format!(
        "<!DOCTYPE html>\n<html><body>\n<p>{}</p>\n<p><strong>{closing}</strong></p>\n<p style=\"color:#666\">Change {} of {}.</p>\n</body></html>\n",
        escape_html(&event.notice),
        event.sequence,
        event.occur_time.format("%Y-%m-%d %H:%M UTC")
    );
    (subject, text, html)
}

fn escape_html(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

impl Sink for MailSink {
    async fn refresh(&mut self, _store: &Store) -> Result<bool> {
        Ok(true)
    }

    fn account_filter(&self) -> Option<AccountId> {
        None
    }

    fn wants(&self, event: &ChangeEvent) -> bool {
        // A kind of a newer version is not mailed: this version cannot say what it means.
        event
            .kind
            .known()
            .is_some_and(|kind| kind.sign_out_required() && kind != ChangeKind::UserDeleted)
    }

    async fn deliver(&mut self, event: &ChangeEvent) -> Result<Outcome, String> {
        let address = self
            .store
            .deliveries()
            .user_email(&event.account_id, &event.user_id)
            .await
            .map_err(|e| format!("cannot read the user's address: {e}"))?;
        let Some(address) = address else {
            return Ok(Outcome::Skipped(
                "the user was deleted before the mail was sent".into(),
            ));
        };
        let message = match self.message(event, &address) {
            Ok(message) => message,
            Err(why) => return Ok(Outcome::Skipped(why)),
        };
        match self.transport.send(message).await {
            Ok(_) => Ok(Outcome::Delivered),
            Err(e) if e.is_permanent() => Ok(Outcome::Skipped(format!(
                "the mail relay refused the mail to {address} for good: {e}"
            ))),
            Err(e) => Err(format!("sending the mail failed: {e}")),
        }
    }

    fn pause_after(&self) -> Option<Duration> {
        // There is no API to resume mail: it keeps retrying at the longest backoff instead.
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ids::UserId;

    fn settings(url: &str, plaintext: bool) -> MailSettings {
        MailSettings {
            smtp_url: url.into(),
            from: "Telephony <telephony@example.com>".into(),
            allow_plaintext_loopback: plaintext,
        }
    }

    #[test]
    fn relay_urls_are_checked() {
        let t = Duration::from_secs(5);
        assert!(transport(&settings("smtp://mail.example.com", false), t).is_ok());
        assert!(transport(&settings("smtps://u:p%40ss@mail.example.com:465", false), t).is_ok());
        assert!(transport(&settings("smtp://127.0.0.1:2525", true), t).is_ok());
        assert!(transport(&settings("smtp://mail.example.com", true), t).is_err());
        assert!(transport(&settings("http://mail.example.com", false), t).is_err());
        assert!(transport(&settings("not a url", false), t).is_err());
        assert_eq!(percent_decode("p%40ss"), "p@ss");
    }

    #[test]
    fn the_mail_says_what_changed_and_asks_to_sign_in_again() {
        let event = ChangeEvent {
            sequence: 7,
            event_id: "e".into(),
            account_id: AccountId::from_stored("a".into()),
            user_id: UserId::from_stored("u".into()),
            kind: ChangeKind::PhoneNumberAssigned.into(),
            e164_phone_number: Some(E164::from_stored("+12065550100".into())),
            settings: crate::domain::telephony::TelephonySettings::OFF,
            notice: "Your number is <new>".into(),
            actor: "k".into(),
            occur_time: chrono::Utc::now(),
        };
        let (subject, text, html) = compose(&event);
        assert!(subject.contains("+12065550100"));
        assert!(text.starts_with("Your number is <new>") && text.contains("sign back in"));
        assert!(html.contains("Your number is &lt;new&gt;"));
    }
}
