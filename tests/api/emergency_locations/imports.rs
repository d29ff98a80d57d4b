//! Locations in bulk: users created with their location (single, batch, `import users`), and
//! `import locations` from the file `export locations` writes — into another account, after a
//! dry run that writes nothing; the server's `validate_only` behind that dry run.

use super::*;
use crate::cli_bulk::{cli, results, statuses};
use crate::common::fixtures::UNKNOWN_ID;
use telephony_admin::proto::{
    BatchCreateUsersRequest, CreateUserRequest, LicenseType, batch_create_users_request,
};

/// A place longer than the 100 characters a location's place may have.
fn too_long() -> String {
    "x".repeat(101)
}

async fn create_user_with(
    app: &TestApp,
    account: &str,
    email: &str,
    location: &str,
) -> Result<telephony_admin::proto::User, tonic::Status> {
    app.users()
        .create_user(CreateUserRequest {
            account_id: account.into(),
            email: email.into(),
            display_name: "New".into(),
            license_type: LicenseType::Basic as i32,
            emergency_location_id: location.into(),
        })
        .await
        .map(|r| r.into_inner())
}

async fn users_are_created_with_their_locations(backend: Backend) {
    let app = spawn_app(backend).await;
    let account = app.create_account("Here").await.account_id;
    let other = app.create_account("There").await.account_id;
    let address = create_address(&app, &account, white_house()).await;
    let here = create_location(&app, &address.address_id, "Floor 1").await;
    let elsewhere_address = create_address(&app, &other, white_house()).await;
    let elsewhere = create_location(&app, &elsewhere_address.address_id, "").await;

    let ann = create_user_with(&app, &account, "ann@example.com", &here.location_id)
        .await
        .expect("created with a location");
    assert_eq!(
        effective(&app, &account, &ann.user_id).await,
        Some((here.location_id.clone(), Source::User))
    );
    let refused = create_user_with(&app, &account, "bob@example.com", &elsewhere.location_id)
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    let unknown = create_user_with(&app, &account, "bob@example.com", UNKNOWN_ID)
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
    assert_eq!(
        app.all_users(&account).await.len(),
        1,
        "no user for a refusal"
    );

    // A batch, best effort: each item as CreateUser would answer it.
    let item = |email: &str, location: &str| batch_create_users_request::Item {
        email: email.into(),
        display_name: "Batch".into(),
        license_type: LicenseType::Basic as i32,
        emergency_location_id: location.into(),
    };
    let answers = app
        .users()
        .batch_create_users(BatchCreateUsersRequest {
            account_id: account.clone(),
            items: vec![
                item("cat@example.com", &here.location_id),
                item("dan@example.com", UNKNOWN_ID),
                item("eve@example.com", ""),
            ],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .results;
    let codes: Vec<Code> = answers
        .iter()
        .map(|r| Code::from(r.status.as_ref().map_or(0, |s| s.code)))
        .collect();
    assert_eq!(codes, [Code::Ok, Code::NotFound, Code::Ok]);
    let cat = answers[0].user.clone().expect("cat");
    let eve = answers[2].user.clone().expect("eve");
    assert_eq!(
        effective(&app, &account, &cat.user_id).await,
        Some((here.location_id.clone(), Source::User))
    );
    assert_eq!(effective(&app, &account, &eve.user_id).await, None);

    // `import users` with the column: a dry run writes nothing, then the import.
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("users.csv");
    std::fs::write(
        &file,
        format!(
            "email,display_name,license_type,emergency_location_id\n\
             fay@example.com,Fay,BASIC,{}\n\
             gus@example.com,Gus,PRO,\n\
             hal@example.com,Hal,PRO,{}\n",
            here.location_id, elsewhere.location_id
        ),
    )
    .unwrap();
    let path = file.to_str().unwrap();
    let dry = cli(
        &app,
        &["import", "users", path, "--account", &account, "--dry-run"],
    )
    .await;
    assert!(!dry.status.success(), "one row is refused");
    let results_file = dir.path().join("users.csv.results.csv");
    assert_eq!(statuses(&results_file), ["OK", "OK", "FAILED_PRECONDITION"]);
    assert_eq!(
        app.all_users(&account).await.len(),
        3,
        "a dry run writes nothing"
    );
    let imported = cli(&app, &["import", "users", path, "--account", &account]).await;
    assert!(!imported.status.success());
    let users = app.all_users(&account).await;
    let fay = users
        .iter()
        .find(|u| u.email == "fay@example.com")
        .expect("fay");
    assert_eq!(
        effective(&app, &account, &fay.user_id).await,
        Some((here.location_id.clone(), Source::User))
    );
    assert!(users.iter().any(|u| u.email == "gus@example.com"));
    assert!(!users.iter().any(|u| u.email == "hal@example.com"));
}

/// `import locations` reads what `export locations` writes: one account's locations become
/// another's, addresses shared as they were, after a dry run that creates nothing.
async fn locations_move_between_accounts_through_files(backend: Backend) {
    let app = spawn_app(backend).await;
    let source = app.create_account("Source").await.account_id;
    let target = app.create_account("Target").await.account_id;
    let office = create_address(&app, &source, white_house()).await;
    for place in ["Floor 1", "Floor 2"] {
        create_location(&app, &office.address_id, place).await;
    }
    let ottawa = create_address(
        &app,
        &source,
        CivicAddress {
            country: "CA".into(),
            house_number: "111".into(),
            street_name: "Wellington".into(),
            street_suffix: "St".into(),
            city: "Ottawa".into(),
            state_or_province: "ON".into(),
            postal_code: "K1A 0A9".into(),
            latitude: Some(45.4236),
            longitude: Some(-75.7009),
            ..Default::default()
        },
    )
    .await;
    create_location(&app, &ottawa.address_id, "").await;
    let exported = cli(&app, &["export", "locations", "--account", &source]).await;
    assert!(exported.status.success());
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("locations.csv");
    std::fs::write(&file, &exported.stdout).unwrap();
    let path = file.to_str().unwrap();
    let results_file = dir.path().join("locations.csv.results.csv");

    let dry = cli(
        &app,
        &[
            "import",
            "locations",
            path,
            "--account",
            &target,
            "--dry-run",
        ],
    )
    .await;
    assert!(
        dry.status.success(),
        "{}",
        String::from_utf8_lossy(&dry.stderr)
    );
    for (status, message) in results(&results_file) {
        assert_eq!(status, "OK");
        assert!(message.contains("would be created"), "{message}");
        assert!(message.contains("STRUCTURE_VALID"), "{message}");
    }
    let locations_of = |account: String| {
        let app = &app;
        async move {
            app.emergency_locations()
                .list_emergency_locations(ListEmergencyLocationsRequest {
                    account_id: account,
                    page_size: 100,
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner()
                .locations
        }
    };
    assert!(
        locations_of(target.clone()).await.is_empty(),
        "a dry run writes nothing"
    );

    let imported = cli(&app, &["import", "locations", path, "--account", &target]).await;
    assert!(
        imported.status.success(),
        "{}",
        String::from_utf8_lossy(&imported.stderr)
    );
    assert_eq!(statuses(&results_file), ["OK", "OK", "OK"]);
    let mut copied = locations_of(target.clone()).await;
    copied.sort_by(|a, b| a.place.cmp(&b.place));
    let places: Vec<&str> = copied.iter().map(|l| l.place.as_str()).collect();
    assert_eq!(places, ["", "Floor 1", "Floor 2"]);
    assert_eq!(
        copied[1].address_id, copied[2].address_id,
        "the two floors share one address, as in the file"
    );
    assert_ne!(copied[0].address_id, copied[1].address_id);
    // Importing the same file again creates nothing: every location is already there.
    let again = cli(&app, &["import", "locations", path, "--account", &target]).await;
    assert!(!again.status.success());
    assert_eq!(
        statuses(&results_file),
        ["ALREADY_EXISTS", "ALREADY_EXISTS", "ALREADY_EXISTS"]
    );
    assert_eq!(locations_of(target.clone()).await.len(), 3);
    let canadian = copied[0].address.clone().unwrap().address.unwrap();
    assert_eq!(canadian.postal_code, "K1A 0A9");
    assert_eq!(canadian.latitude, Some(45.4236));
    assert!(copied.iter().all(|l| l.account_id == target));

    // Rows the server refuses are named per row; an address that fails validation is stored
    // and labelled so, as CreateEmergencyAddress would.
    let bad = dir.path().join("bad.csv");
    std::fs::write(
        &bad,
        format!(
            "country,house_number,street_name,city,state_or_province,postal_code,place\n\
             US,1,Main,Springfield,IL,62701,{}\n\
             US,1,Main,Springfield,ZZ,ABCDE,Lobby\n\
             US,1,Main,Springfield,IL,62701,Desk 4\n",
            too_long()
        ),
    )
    .unwrap();
    let bad_path = bad.to_str().unwrap();
    let output = cli(
        &app,
        &["import", "locations", bad_path, "--account", &target],
    )
    .await;
    assert!(!output.status.success());
    let answers = results(&dir.path().join("bad.csv.results.csv"));
    assert_eq!(answers[0].0, "INVALID_ARGUMENT", "{answers:?}");
    assert_eq!(answers[1].0, "OK");
    assert!(answers[1].1.contains("INVALID"), "{answers:?}");
    assert!(answers[1].1.contains("postal_code"), "{answers:?}");
    assert_eq!(answers[2].0, "OK");

    let atomic = cli(
        &app,
        &[
            "import",
            "locations",
            path,
            "--account",
            &target,
            "--atomic",
        ],
    )
    .await;
    assert!(!atomic.status.success(), "one call per row: no --atomic");
    assert!(String::from_utf8_lossy(&atomic.stderr).contains("--dry-run"));
}

/// The dry runs behind the import: answered as a real call would be, without ids, and nothing
/// written.
async fn dry_runs_write_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let account = app.create_account("Dry").await.account_id;
    let checked = app
        .emergency_locations()
        .create_emergency_address(CreateEmergencyAddressRequest {
            account_id: account.clone(),
            address: Some(CivicAddress {
                postal_code: "1234".into(),
                ..white_house()
            }),
            validate_only: true,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(checked.address_id, "");
    assert_eq!(checked.validation_state, ValidationState::Invalid as i32);
    assert_eq!(problem_fields(&checked), ["postal_code"]);
    let listed = app
        .emergency_locations()
        .list_emergency_addresses(ListEmergencyAddressesRequest {
            account_id: account.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .addresses;
    assert!(listed.is_empty());

    // An unknown account is refused in a dry run as in a real one.
    let unknown = app
        .emergency_locations()
        .create_emergency_location(CreateEmergencyLocationRequest {
            account_id: UNKNOWN_ID.into(),
            address: Some(white_house()),
            validate_only: true,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);

    // A location names its address one way: an id, or a new address.
    let address = create_address(&app, &account, white_house()).await;
    let both = app
        .emergency_locations()
        .create_emergency_location(CreateEmergencyLocationRequest {
            address_id: address.address_id.clone(),
            address: Some(white_house()),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(both.code(), Code::InvalidArgument);
    let on_existing = app
        .emergency_locations()
        .create_emergency_location(CreateEmergencyLocationRequest {
            address_id: address.address_id.clone(),
            place: "Floor 9".into(),
            validate_only: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(on_existing.location_id, "");
    assert_eq!(on_existing.address_id, address.address_id);
    let listed = app
        .emergency_locations()
        .list_emergency_locations(ListEmergencyLocationsRequest {
            account_id: account,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .locations;
    assert!(listed.is_empty(), "a dry run writes nothing");
}

on_both_databases!(
    users_are_created_with_their_locations,
    locations_move_between_accounts_through_files,
    dry_runs_write_nothing,
);
