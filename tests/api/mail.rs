//! E-mail to users through a real SMTP server on a loopback port: every change a user must sign
//! out and back in for is mailed to that user's address, with a subject and text in the words of
//! the event's notice, a plain-text and an HTML part, and the event id in the Message-ID. A
//! USER_DELETED event is not mailed. Mail is durable: a relay that fails for a while and a
//! server restart in the middle lose nothing.

use std::time::Duration;

use telephony_admin::config::ServeSettings;
use telephony_admin::proto::{ChangeEvent, DeleteUserRequest, TelephonySettings};

use crate::common::fixtures::number;
use crate::common::smtp_sink::{Mail, SmtpSink};
use crate::common::{Backend, spawn_app_on, spawn_app_with};
use crate::webhooks::{fast_delivery, sign_outs};

const WAIT: Duration = Duration::from_secs(60);
const FROM: &str = "telephony@example.com";

fn with_mail(sink: &SmtpSink) -> impl FnOnce(&mut ServeSettings) + use<> {
    let url = sink.url();
    move |settings| {
        fast_delivery(settings);
        settings.smtp_url = Some(url);
        settings.mail_from = Some(format!("Telephony <{FROM}>"));
        settings.smtp_plaintext_loopback = true;
    }
}

fn message_id(mail: &Mail) -> String {
    mail.header("Message-ID").unwrap_or_default().to_owned()
}

fn assert_mail_for(mail: &Mail, event: &ChangeEvent, to: &str, subject: &str) {
    assert_eq!(mail.recipients, vec![to.to_owned()]);
    assert_eq!(mail.mail_from, FROM);
    assert!(
        mail.header("To").unwrap().contains(to),
        "{:?}",
        mail.headers
    );
    assert_eq!(mail.header("Subject"), Some(subject));
    assert_eq!(
        message_id(mail),
        format!("<{}@example.com>", event.event_id)
    );
    assert!(
        mail.text.starts_with(&event.notice),
        "the text is the notice: {:?} vs {:?}",
        mail.text,
        event.notice
    );
    assert!(
        mail.text
            .contains("sign out of the calling app and sign back in")
    );
    assert!(
        mail.html
            .contains("sign out of the calling app and sign back in")
    );
    assert!(mail.html.contains("<html>"));
}

async fn every_sign_out_change_is_mailed_to_its_user(backend: Backend) {
    let sink = SmtpSink::start().await;
    let app = spawn_app_with(backend, with_mail(&sink)).await;
    let account = app.create_account("Acme").await.account_id;
    let alice = app.create_user(&account, "alice@example.com").await.user_id;
    let bob = app.create_user(&account, "bob@example.com").await.user_id;
    let carol = app.create_user(&account, "carol@example.com").await.user_id;
    app.order_business_numbers(&[number(1)]).await;

    app.assign(&account, &alice, &number(1)).await.unwrap();
    app.update_settings(
        &account,
        &alice,
        TelephonySettings {
            inbound_calling: true,
            outbound_calling: true,
            sms: false,
        },
        &[],
    )
    .await
    .unwrap();
    sign_outs(&app, &account, &bob, 1).await;
    // Not mailed: the user and their address are gone.
    app.users()
        .delete_user(DeleteUserRequest {
            account_id: account.clone(),
            user_id: carol,
        })
        .await
        .unwrap();
    sign_outs(&app, &account, &alice, 1).await;

    let mails = sink.wait_for(4, WAIT).await;
    let events = app.all_changes(&account, "").await;
    assert_eq!(events.len(), 5);
    assert_mail_for(
        &mails[0],
        &events[0],
        "alice@example.com",
        &format!("Your business calling number is now {}", number(1)),
    );
    assert_mail_for(
        &mails[1],
        &events[1],
        "alice@example.com",
        "Your calling and SMS permissions have changed",
    );
    assert!(mails[1].text.contains("inbound calling is on"));
    assert_mail_for(
        &mails[2],
        &events[2],
        "bob@example.com",
        "Please sign out and sign back in",
    );
    // events[3] is the USER_DELETED of carol: skipped, the next mail is the one after it.
    assert_mail_for(
        &mails[3],
        &events[4],
        "alice@example.com",
        "Please sign out and sign back in",
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(sink.mails().len(), 4, "nothing else is mailed");
}

async fn a_failing_relay_and_a_restart_lose_no_mail(backend: Backend) {
    let sink = SmtpSink::start().await;
    let mut first = spawn_app_with(backend, with_mail(&sink)).await;
    let account = first.create_account("Acme").await.account_id;
    let user = first
        .create_user(&account, "dana@example.com")
        .await
        .user_id;
    sign_outs(&first, &account, &user, 2).await;
    sink.wait_for(2, WAIT).await;

    // The relay refuses for a while (451): the mails wait, then the server restarts.
    sink.set_failing(true);
    sign_outs(&first, &account, &user, 3).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    first.stop().await;
    sink.set_failing(false);
    let key = first.admin_key.clone();
    let database = first
        .database
        .take()
        .expect("the first app owns its database");
    let second = spawn_app_on(database, |settings| {
        with_mail(&sink)(settings);
        settings.bootstrap_key = Some(key);
    })
    .await;
    sign_outs(&second, &account, &user, 2).await;

    let events = second.all_changes(&account, &user).await;
    assert_eq!(events.len(), 7);
    sink.wait_for_distinct(7, WAIT).await;
    let mut ids: Vec<String> = sink.mails().iter().map(message_id).collect();
    // At least once: a mail cut off by the stop may be sent again, right after itself.
    ids.dedup();
    let expected: Vec<String> = events
        .iter()
        .map(|e| format!("<{}@example.com>", e.event_id))
        .collect();
    assert_eq!(ids, expected, "every mail, in order");
    assert!(
        sink.mails()
            .iter()
            .all(|m| m.recipients == ["dana@example.com"])
    );
}

on_both_databases!(
    every_sign_out_change_is_mailed_to_its_user,
    a_failing_relay_and_a_restart_lose_no_mail,
);
