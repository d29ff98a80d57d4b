//! Hostile fields in every TelephonyService request.

use super::{Case, Fixture, bad_ids, bad_masks, case, huge, run_cases, show};
use crate::common::{Backend, TestApp};
use telephony_admin::proto::{
    AssignPhoneNumberRequest, GetTelephonySettingsRequest, TelephonySettings,
    UnassignPhoneNumberRequest, UpdateTelephonySettingsRequest,
};

fn telephony_cases<'a>(app: &'a TestApp, f: &'a Fixture) -> Vec<Case<'a>> {
    let mut cases = Vec::new();
    let all_on = || {
        Some(TelephonySettings {
            inbound_calling: true,
            outbound_calling: true,
            sms: true,
        })
    };
    for id in bad_ids() {
        let label = show(&id);
        let ids = [
            (id.clone(), f.user_id.clone(), "account_id"),
            (f.account_id.clone(), id.clone(), "user_id"),
        ];
        for (account_id, user_id, field) in ids {
            let (a1, u1) = (account_id.clone(), user_id.clone());
            cases.push(case(
                format!("AssignPhoneNumber {field} {label}"),
                field,
                async move {
                    app.telephony()
                        .assign_phone_number(AssignPhoneNumberRequest {
                            emergency_location_id: String::new(),
                            account_id: a1,
                            user_id: u1,
                            e164_phone_number: "+12065550101".into(),
                            request_id: String::new(),
                        })
                        .await
                        .map(drop)
                },
            ));
            let (a2, u2) = (account_id.clone(), user_id.clone());
            cases.push(case(
                format!("UnassignPhoneNumber {field} {label}"),
                field,
                async move {
                    app.telephony()
                        .unassign_phone_number(UnassignPhoneNumberRequest {
                            account_id: a2,
                            user_id: u2,
                            confirm: true,
                            request_id: String::new(),
                        })
                        .await
                        .map(drop)
                },
            ));
            let (a3, u3) = (account_id.clone(), user_id.clone());
            cases.push(case(
                format!("GetTelephonySettings {field} {label}"),
                field,
                async move {
                    app.telephony()
                        .get_telephony_settings(GetTelephonySettingsRequest {
                            account_id: a3,
                            user_id: u3,
                        })
                        .await
                        .map(drop)
                },
            ));
            cases.push(case(
                format!("UpdateTelephonySettings {field} {label}"),
                field,
                async move {
                    app.telephony()
                        .update_telephony_settings(UpdateTelephonySettingsRequest {
                            account_id,
                            user_id,
                            telephony_settings: all_on(),
                            update_mask: None,
                            request_id: String::new(),
                        })
                        .await
                        .map(drop)
                },
            ));
        }
    }
    for number in [String::new(), huge(), "+1".into(), "not a number".into()] {
        cases.push(case(
            format!("AssignPhoneNumber e164_phone_number {}", show(&number)),
            "e164_phone_number",
            async move {
                app.telephony()
                    .assign_phone_number(AssignPhoneNumberRequest {
                        emergency_location_id: String::new(),
                        account_id: f.account_id.clone(),
                        user_id: f.user_id.clone(),
                        e164_phone_number: number,
                        request_id: String::new(),
                    })
                    .await
                    .map(drop)
            },
        ));
    }
    for request_id in ["not-a-uuid".to_owned(), huge(), "'; --".into()] {
        let label = show(&request_id);
        let (r1, r2, r3) = (request_id.clone(), request_id.clone(), request_id);
        cases.push(case(
            format!("AssignPhoneNumber request_id {label}"),
            "request_id",
            async move {
                app.telephony()
                    .assign_phone_number(AssignPhoneNumberRequest {
                        emergency_location_id: String::new(),
                        account_id: f.account_id.clone(),
                        user_id: f.user_id.clone(),
                        e164_phone_number: "+12065550101".into(),
                        request_id: r1,
                    })
                    .await
                    .map(drop)
            },
        ));
        cases.push(case(
            format!("UnassignPhoneNumber request_id {label}"),
            "request_id",
            async move {
                app.telephony()
                    .unassign_phone_number(UnassignPhoneNumberRequest {
                        account_id: f.account_id.clone(),
                        user_id: f.user_id.clone(),
                        confirm: true,
                        request_id: r2,
                    })
                    .await
                    .map(drop)
            },
        ));
        cases.push(case(
            format!("UpdateTelephonySettings request_id {label}"),
            "request_id",
            async move {
                app.telephony()
                    .update_telephony_settings(UpdateTelephonySettingsRequest {
                        account_id: f.account_id.clone(),
                        user_id: f.user_id.clone(),
                        telephony_settings: all_on(),
                        update_mask: None,
                        request_id: r3,
                    })
                    .await
                    .map(drop)
            },
        ));
    }
    cases.push(case(
        "UnassignPhoneNumber without confirm",
        "confirm",
        async move {
            app.telephony()
                .unassign_phone_number(UnassignPhoneNumberRequest {
                    account_id: f.account_id.clone(),
                    user_id: f.user_id.clone(),
                    confirm: false,
                    request_id: String::new(),
                })
                .await
                .map(drop)
        },
    ));
    cases.push(case(
        "UpdateTelephonySettings without settings",
        "telephony_settings",
        async move {
            app.telephony()
                .update_telephony_settings(UpdateTelephonySettingsRequest {
                    account_id: f.account_id.clone(),
                    user_id: f.user_id.clone(),
                    telephony_settings: None,
                    update_mask: None,
                    request_id: String::new(),
                })
                .await
                .map(drop)
        },
    ));
    for (i, update_mask) in bad_masks().into_iter().enumerate() {
        cases.push(case(
            format!("UpdateTelephonySettings bad mask #{i}"),
            "update_mask",
            async move {
                app.telephony()
                    .update_telephony_settings(UpdateTelephonySettingsRequest {
                        account_id: f.account_id.clone(),
                        user_id: f.user_id.clone(),
                        telephony_settings: all_on(),
                        update_mask,
                        request_id: String::new(),
                    })
                    .await
                    .map(drop)
            },
        ));
    }
    cases
}

async fn hostile_telephony_requests(backend: Backend) {
    run_cases(backend, telephony_cases).await;
}

on_both_databases!(hostile_telephony_requests,);
