//! OpenTelemetry traces of a real server process, exported over OTLP/gRPC to a collector in the
//! test (the TraceService of opentelemetry-proto, on a loopback port): a client's W3C
//! `traceparent` is the parent of the RPC's server span, which carries the method, status and
//! account; the RPC's log line carries the trace id.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
    trace_service_server::{TraceService, TraceServiceServer},
};
use opentelemetry_proto::tonic::common::v1::{KeyValue, any_value::Value};
use opentelemetry_proto::tonic::trace::v1::{Span, span::SpanKind};
use telephony_admin::proto::{CreateAccountRequest, GetUserRequest, LogoutUserRequest};
use tokio_stream::wrappers::TcpListenerStream;
use tonic::{Request, Response, Status};

use crate::common::Backend;
use crate::common::fixtures::new_user;
use crate::common::process::TestProcess;

/// A received span, with the `service.name` of the resource that sent it.
type Received = (Option<String>, Span);

#[derive(Clone, Default)]
struct Collector {
    spans: Arc<Mutex<Vec<Received>>>,
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let mut spans = self.spans.lock().unwrap();
        for resource_spans in request.into_inner().resource_spans {
            let service = resource_spans
                .resource
                .as_ref()
                .and_then(|r| string_attribute(&r.attributes, "service.name"));
            for scope in resource_spans.scope_spans {
                spans.extend(scope.spans.into_iter().map(|s| (service.clone(), s)));
            }
        }
        Ok(Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

impl Collector {
    /// Starts the collector on a loopback port; returns its OTLP endpoint.
    async fn start(&self) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let service = TraceServiceServer::new(self.clone());
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(TcpListenerStream::new(listener)),
        );
        format!("http://{address}")
    }

    /// Waits (at most 60 s) for a span for which `matches` holds.
    async fn wait_for(&self, matches: impl Fn(&Span) -> bool) -> Received {
        let found = tokio::time::timeout(Duration::from_secs(60), async {
            loop {
                if let Some(found) = self
                    .spans
                    .lock()
                    .unwrap()
                    .iter()
                    .find(|(_, span)| matches(span))
                {
                    return found.clone();
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await;
        found.unwrap_or_else(|_| {
            let names: Vec<String> = self
                .spans
                .lock()
                .unwrap()
                .iter()
                .map(|(_, s)| s.name.clone())
                .collect();
            panic!("no matching span exported within 60 s; received: {names:?}")
        })
    }
}

fn attribute<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a Value> {
    attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v| v.value.as_ref())
}

fn string_attribute(attributes: &[KeyValue], key: &str) -> Option<String> {
    match attribute(attributes, key) {
        Some(Value::StringValue(s)) => Some(s.clone()),
        _ => None,
    }
}

const GET_USER: &str = "telephony.admin.v1.UserService/GetUser";

async fn traceparent_is_the_parent_of_the_rpc_span(backend: Backend) {
    let collector = Collector::default();
    let endpoint = collector.start().await;
    let server = TestProcess::spawn(
        backend,
        &["--otlp-endpoint", &endpoint],
        // Export every 100 ms instead of every 5 s.
        &[("OTEL_BSP_SCHEDULE_DELAY", "100")],
    )
    .await;
    let key = server.admin_key.clone();
    let account = server
        .accounts_as(Some(&key))
        .create_account(CreateAccountRequest {
            name: "Traced".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let mut users = server.users_as(Some(&key));
    let user = users
        .create_user(new_user(&account.account_id, "traced@example.com"))
        .await
        .unwrap()
        .into_inner();

    // The caller's trace: fresh ids, sampled.
    let trace_id = uuid::Uuid::new_v4().simple().to_string();
    let parent_span_id = uuid::Uuid::new_v4().simple().to_string()[..16].to_owned();
    let mut request = Request::new(GetUserRequest {
        account_id: account.account_id.clone(),
        user_id: user.user_id.clone(),
    });
    request.metadata_mut().insert(
        "traceparent",
        format!("00-{trace_id}-{parent_span_id}-01")
            .parse()
            .unwrap(),
    );
    users.get_user(request).await.unwrap();

    let trace_bytes = hex::decode(&trace_id).unwrap();
    let (service, span) = collector
        .wait_for(|span| span.trace_id == trace_bytes && span.name == GET_USER)
        .await;
    assert_eq!(span.parent_span_id, hex::decode(&parent_span_id).unwrap());
    assert_eq!(span.kind, SpanKind::Server as i32);
    assert_eq!(service.as_deref(), Some("telephony-admin"));
    assert_eq!(
        string_attribute(&span.attributes, "rpc.system").as_deref(),
        Some("grpc")
    );
    assert_eq!(
        string_attribute(&span.attributes, "rpc.service").as_deref(),
        Some("telephony.admin.v1.UserService")
    );
    assert_eq!(
        string_attribute(&span.attributes, "rpc.method").as_deref(),
        Some("GetUser")
    );
    assert_eq!(
        attribute(&span.attributes, "rpc.grpc.status_code"),
        Some(&Value::IntValue(0))
    );
    assert_eq!(
        string_attribute(&span.attributes, "account_id").as_deref(),
        Some(account.account_id.as_str())
    );

    // A write: the use case runs on the store's writer task, yet its span is a child of the RPC
    // span, and the commit's span a child of the use case's.
    let write_trace_id = uuid::Uuid::new_v4().simple().to_string();
    let mut logout = Request::new(LogoutUserRequest {
        account_id: account.account_id.clone(),
        user_id: user.user_id.clone(),
    });
    logout.metadata_mut().insert(
        "traceparent",
        format!("00-{write_trace_id}-{parent_span_id}-01")
            .parse()
            .unwrap(),
    );
    users.logout_user(logout).await.unwrap();
    let write_trace = hex::decode(&write_trace_id).unwrap();
    let (_, rpc) = collector
        .wait_for(|span| span.trace_id == write_trace && span.name.ends_with("/LogoutUser"))
        .await;
    let (_, use_case) = collector
        .wait_for(|span| span.trace_id == write_trace && span.name == "store.use_case")
        .await;
    assert_eq!(use_case.parent_span_id, rpc.span_id, "{use_case:?}");
    assert_eq!(
        string_attribute(&use_case.attributes, "use_case").as_deref(),
        Some("LogoutUser")
    );
    assert_eq!(
        string_attribute(&use_case.attributes, "outcome").as_deref(),
        Some("ok")
    );
    let (_, commit) = collector
        .wait_for(|span| span.trace_id == write_trace && span.name == "store.commit")
        .await;
    assert_eq!(commit.parent_span_id, use_case.span_id, "{commit:?}");

    // The RPC's log line names the trace.
    let line = server
        .find_line(|line| line["message"] == "rpc" && line.to_string().contains(&trace_id))
        .unwrap_or_else(|| panic!("no log line carries trace id {trace_id}"));
    assert_eq!(line["grpc.status"], "Ok", "{line}");

    // Without a traceparent, the RPC starts a trace of its own.
    users
        .get_user(GetUserRequest {
            account_id: account.account_id.clone(),
            user_id: "0190a5b2-7c4e-7d1a-9b3f-2a6c8e4d1f00".into(),
        })
        .await
        .unwrap_err();
    let (_, root) = collector
        .wait_for(|span| {
            span.name == GET_USER
                && span.trace_id != trace_bytes
                && attribute(&span.attributes, "rpc.grpc.status_code") == Some(&Value::IntValue(5))
        })
        .await;
    assert!(root.parent_span_id.is_empty(), "{root:?}");
}

on_both_databases!(traceparent_is_the_parent_of_the_rpc_span);
