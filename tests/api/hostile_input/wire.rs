//! Bytes that are not a protobuf message, and an `authorization` value that is not text: refused
//! before any handler runs, with nothing stored and the connection still serving.

use super::fixture;
use crate::common::{Backend, TestApp, spawn_app};
use http::uri::PathAndQuery;
use prost::Message;
use prost::bytes::{Buf, BufMut};
use telephony_admin::proto::{CreateAccountRequest, ListAccountsRequest, ListAccountsResponse};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::{Code, Status};

/// Sends and receives message bodies as raw bytes, so a request can be anything at all.
#[derive(Debug, Clone, Copy, Default)]
struct RawCodec;

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> Self::Encoder {
        RawCodec
    }

    fn decoder(&mut self) -> Self::Decoder {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Vec<u8>;
    type Error = Status;

    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Vec<u8>;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Status> {
        let mut bytes = vec![0; src.remaining()];
        src.copy_to_slice(&mut bytes);
        Ok(Some(bytes))
    }
}

/// Every method, whether it streams, and the number of a string field of its request.
const METHODS: [(&str, bool, u8); 24] = [
    ("AccountService/CreateAccount", false, 1),
    ("AccountService/GetAccount", false, 1),
    ("AccountService/ListAccounts", false, 2),
    ("AccountService/UpdateAccount", false, 1),
    ("AccountService/DeleteAccount", false, 1),
    ("UserService/CreateUser", false, 1),
    ("UserService/GetUser", false, 1),
    ("UserService/ListUsers", false, 1),
    ("UserService/UpdateUser", false, 1),
    ("UserService/DeleteUser", false, 1),
    ("UserService/LogoutUser", false, 1),
    ("PhoneNumberService/CreatePhoneNumberOrder", false, 2),
    ("PhoneNumberService/GetPhoneNumberOrder", false, 1),
    ("PhoneNumberService/GetPhoneNumber", false, 1),
    ("PhoneNumberService/ListPhoneNumbers", false, 3),
    ("PhoneNumberService/UpdatePhoneNumber", false, 1),
    ("PhoneNumberService/DeletePhoneNumber", false, 1),
    ("PhoneNumberService/RestorePhoneNumber", false, 1),
    ("TelephonyService/AssignPhoneNumber", false, 1),
    ("TelephonyService/UnassignPhoneNumber", false, 1),
    ("TelephonyService/GetTelephonySettings", false, 1),
    ("TelephonyService/UpdateTelephonySettings", false, 1),
    ("ChangeService/WatchChanges", true, 1),
    ("ChangeService/ListChanges", false, 1),
];

/// Sends `body` as the request of `method` with the admin key; the server's answer.
async fn send_raw(
    app: &TestApp,
    method: &str,
    streaming: bool,
    body: Vec<u8>,
    authorization: http::HeaderValue,
) -> Result<(), Status> {
    let mut grpc = tonic::client::Grpc::new(app.channel.clone());
    grpc.ready().await.expect("the channel is ready");
    let path: PathAndQuery = format!("/telephony.admin.v1.{method}")
        .parse()
        .expect("a path");
    let mut request = tonic::Request::new(body);
    let mut headers = http::HeaderMap::new();
    headers.insert("authorization", authorization);
    *request.metadata_mut() = tonic::metadata::MetadataMap::from_headers(headers);
    if streaming {
        grpc.server_streaming(request, path, RawCodec)
            .await
            .map(drop)
    } else {
        grpc.unary(request, path, RawCodec).await.map(drop)
    }
}

fn bearer(app: &TestApp) -> http::HeaderValue {
    format!("Bearer {}", app.admin_key).parse().unwrap()
}

/// Raw garbage, a string field that is not UTF-8, and a truncated message, to every method:
/// tonic refuses each as INTERNAL (its code for a request that does not decode), before any
/// handler runs; nothing is stored, and the same connection keeps serving.
async fn bytes_that_are_not_protobuf(backend: Backend) {
    let app = spawn_app(backend).await;
    let f = fixture(&app).await;
    let before = app.snapshot(&[&f.account_id]).await;
    let mut failures = Vec::new();
    for (method, streaming, string_field) in METHODS {
        let tag = (string_field << 3) | 2;
        let bodies: [(&str, Vec<u8>); 5] = [
            ("an overlong varint", vec![0xff; 11]),
            ("wire type 7", vec![0x0f, 0x01, 0x02]),
            (
                "an HTTP request",
                b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
            ),
            ("invalid UTF-8 in a string field", vec![tag, 2, 0xff, 0xfe]),
            ("a truncated message", vec![tag, 10, b'a', b'b', b'c']),
        ];
        for (what, body) in bodies {
            match send_raw(&app, method, streaming, body, bearer(&app)).await {
                Ok(()) => failures.push(format!("{method} with {what}: accepted")),
                Err(status) => {
                    if status.code() != Code::Internal
                        || !status
                            .message()
                            .contains("failed to decode Protobuf message")
                    {
                        failures.push(format!(
                            "{method} with {what}: {:?} {:?}",
                            status.code(),
                            status.message()
                        ));
                    }
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(before, app.snapshot(&[&f.account_id]).await);

    // The raw client itself is sound: a well-formed body is answered, and an unknown field in
    // it is ignored.
    let mut body = ListAccountsRequest::default().encode_to_vec();
    body.extend([(99 << 3) as u8 | 0x80, 0x06, 0x01]); // field 99, varint 1
    let mut grpc = tonic::client::Grpc::new(app.channel.clone());
    grpc.ready().await.unwrap();
    let mut request = tonic::Request::new(body);
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {}", app.admin_key).parse().unwrap(),
    );
    let answer = grpc
        .unary(
            request,
            PathAndQuery::from_static("/telephony.admin.v1.AccountService/ListAccounts"),
            RawCodec,
        )
        .await
        .expect("a well-formed raw request")
        .into_inner();
    let accounts = ListAccountsResponse::decode(answer.as_slice()).expect("a response");
    assert_eq!(accounts.accounts, before.accounts);

    app.accounts()
        .create_account(CreateAccountRequest {
            name: "Afterwards".into(),
        })
        .await
        .expect("the server still serves");
}

/// An `authorization` value with bytes that are not text is UNAUTHENTICATED, not a crash.
async fn authorization_that_is_not_text(backend: Backend) {
    let app = spawn_app(backend).await;
    let before = app
        .accounts()
        .list_accounts(ListAccountsRequest::default())
        .await
        .unwrap()
        .into_inner();
    let body = CreateAccountRequest {
        name: "Never".into(),
    }
    .encode_to_vec();
    for value in [
        b"Bearer \xff\xfe\xfd".as_slice(),
        b"\xc3\xa9\xc3\xa9".as_slice(),
        format!("Bearer {}\u{e9}", app.admin_key).as_bytes(),
    ] {
        let value = http::HeaderValue::from_bytes(value).expect("obs-text is a valid header value");
        let refused = send_raw(
            &app,
            "AccountService/CreateAccount",
            false,
            body.clone(),
            value,
        )
        .await
        .expect_err("not a key");
        assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");
    }
    let after = app
        .accounts()
        .list_accounts(ListAccountsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(before, after);
}

on_both_databases!(bytes_that_are_not_protobuf, authorization_that_is_not_text,);
