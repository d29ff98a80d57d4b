//! A US or Canadian number goes only to a user with an emergency location: single, batch (best
//! effort, atomic, dry run) and CSV import.

use super::*;

pub(super) fn with_the_rule(settings: &mut telephony_admin::config::ServeSettings) {
    settings.emergency_location_countries = "US,CA".into();
}

pub(super) fn reason(status: &tonic::Status) -> String {
    status
        .get_details_error_info()
        .map(|info| info.reason)
        .unwrap_or_default()
}

pub(super) async fn assign_with(
    app: &TestApp,
    account: &str,
    user: &str,
    number: &str,
    location: &str,
) -> Result<telephony_admin::proto::User, tonic::Status> {
    app.telephony()
        .assign_phone_number(AssignPhoneNumberRequest {
            account_id: account.into(),
            user_id: user.into(),
            e164_phone_number: number.into(),
            request_id: String::new(),
            emergency_location_id: location.into(),
        })
        .await
        .map(|r| r.into_inner())
}

pub(super) async fn batch_assign(
    app: &TestApp,
    account: &str,
    items: &[(&str, &str, &str)],
    atomic: bool,
    validate_only: bool,
) -> Vec<Code> {
    app.telephony()
        .batch_assign_phone_numbers(BatchAssignPhoneNumbersRequest {
            account_id: account.into(),
            items: items
                .iter()
                .map(
                    |(user, number, location)| batch_assign_phone_numbers_request::Item {
                        user_id: (*user).into(),
                        e164_phone_number: (*number).into(),
                        emergency_location_id: (*location).into(),
                    },
                )
                .collect(),
            atomic,
            validate_only,
            request_id: String::new(),
        })
        .await
        .expect("the batch is answered")
        .into_inner()
        .results
        .into_iter()
        .map(|r| Code::from(r.status.map_or(0, |s| s.code)))
        .collect()
}

/// A US or Canadian number goes only to a user with an emergency location: given with the
/// assignment, their own, or their account's default. Other countries' numbers need none.
async fn a_us_number_needs_an_emergency_location(backend: Backend) {
    let app = spawn_app_with(backend, with_the_rule).await;
    let account = app.create_account("Acme").await.account_id;
    let users: Vec<String> = bulk_users(&app, &account, "u", 5)
        .await
        .into_iter()
        .map(|u| u.user_id)
        .collect();
    const LONDON: &str = "+442071838750";
    app.order_business_numbers(&[number(1), number(2), number(3), number(4), LONDON.into()])
        .await;
    let address = create_address(&app, &account, white_house()).await;
    let location = create_location(&app, &address.address_id, "Floor 3").await;

    let refused = assign_with(&app, &account, &users[0], &number(1), "")
        .await
        .expect_err("no location");
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert_eq!(reason(&refused), "EMERGENCY_LOCATION_REQUIRED");
    assert!(refused.message().contains("US number"), "{refused:?}");

    // With a location, in the same transaction; the user keeps it for their next number.
    assign_with(&app, &account, &users[0], &number(1), &location.location_id)
        .await
        .expect("assigned with a location");
    app.unassign(&account, &users[0], true).await.unwrap();
    assign_with(&app, &account, &users[0], &number(1), "")
        .await
        .expect("the user's own location now");

    // Other countries' numbers need none.
    assign_with(&app, &account, &users[4], LONDON, "")
        .await
        .expect("a UK number");

    // Batches answer per item as the single RPC does: best effort, dry run, atomic.
    let items = [
        (users[1].as_str(), number(2), ""),
        (users[2].as_str(), number(3), location.location_id.as_str()),
    ];
    let items: Vec<(&str, &str, &str)> =
        items.iter().map(|(u, n, l)| (*u, n.as_str(), *l)).collect();
    assert_eq!(
        batch_assign(&app, &account, &items, false, true).await,
        [Code::FailedPrecondition, Code::Ok],
        "dry run"
    );
    assert_eq!(
        batch_assign(&app, &account, &items, true, false).await,
        [Code::FailedPrecondition, Code::Aborted],
        "atomic"
    );
    assert_eq!(
        batch_assign(&app, &account, &items, false, false).await,
        [Code::FailedPrecondition, Code::Ok],
        "best effort"
    );

    // The account's default covers everyone else.
    set(
        &app,
        Target::AccountId(account.clone()),
        &location.location_id,
    )
    .await
    .unwrap();
    assign_with(&app, &account, &users[1], &number(2), "")
        .await
        .expect("the account's default");

    // A location of another account is not given.
    let other = app.create_account("Other").await.account_id;
    let other_address = create_address(&app, &other, white_house()).await;
    let foreign = create_location(&app, &other_address.address_id, "").await;
    let refused = assign_with(&app, &account, &users[3], &number(4), &foreign.location_id)
        .await
        .expect_err("another account's location");
    assert_eq!(reason(&refused), "LOCATION_OF_ANOTHER_ACCOUNT");
}

/// `import assignments` takes an `emergency_location_id` column; a row without one, for a US
/// number and a user without a location, is refused in the result file.
async fn an_import_gives_locations_with_numbers(backend: Backend) {
    let app = spawn_app_with(backend, with_the_rule).await;
    let account = app.create_account("Import").await.account_id;
    for name in ["ann", "bob"] {
        app.create_user(&account, &format!("{name}@example.com"))
            .await;
    }
    app.order_business_numbers(&[number(11), number(12)]).await;
    let address = create_address(&app, &account, white_house()).await;
    let location = create_location(&app, &address.address_id, "Floor 1").await;
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("assignments.csv");
    std::fs::write(
        &file,
        format!(
            "email,e164_phone_number,emergency_location_id\n\
             ann@example.com,{},{}\n\
             bob@example.com,{},\n",
            number(11),
            location.location_id,
            number(12)
        ),
    )
    .unwrap();
    let output = crate::cli_bulk::cli(
        &app,
        &[
            "import",
            "assignments",
            file.to_str().unwrap(),
            "--account",
            &account,
        ],
    )
    .await;
    assert!(!output.status.success(), "one row is refused");
    let results = dir.path().join("assignments.csv.results.csv");
    assert_eq!(
        crate::cli_bulk::statuses(&results),
        ["OK", "FAILED_PRECONDITION"]
    );
    let text = std::fs::read_to_string(&results).unwrap();
    assert!(text.contains("needs an emergency location"), "{text}");
}

/// `export locations` writes every location of the account with its address and validation.
async fn an_export_lists_the_locations_with_their_addresses(backend: Backend) {
    let app = spawn_app(backend).await;
    let account = app.create_account("Export").await.account_id;
    let address = create_address(&app, &account, white_house()).await;
    let first = create_location(&app, &address.address_id, "Floor 1").await;
    let second = create_location(&app, &address.address_id, "Floor 2").await;
    let output = crate::cli_bulk::cli(&app, &["export", "locations", "--account", &account]).await;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut reader = csv::Reader::from_reader(output.stdout.as_slice());
    let header = reader.headers().unwrap().clone();
    let column = |name: &str| header.iter().position(|h| h == name).expect(name);
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 2);
    for (row, location) in rows.iter().zip([&first, &second]) {
        assert_eq!(&row[column("location_id")], location.location_id);
        assert_eq!(&row[column("place")], location.place);
        assert_eq!(&row[column("postal_code")], "20500");
        assert_eq!(&row[column("validation_state")], "STRUCTURE_VALID");
    }
    let refused = crate::cli_bulk::cli(&app, &["export", "locations"]).await;
    assert!(!refused.status.success(), "--account is required");
}

on_both_databases!(
    an_export_lists_the_locations_with_their_addresses,
    a_us_number_needs_an_emergency_location,
    an_import_gives_locations_with_numbers,
);
