//! Every PostgreSQL connection of the service sends without Nagle's delay (TCP_NODELAY): sqlx
//! 0.9.0 leaves it off, and a statement larger than one TCP segment (a batch's multi-row
//! INSERT) would otherwise wait about 40 ms for the server's delayed ACK.

use sqlx::Connection;
use telephony_admin::store::pg_nodelay::for_each_tcp_socket;

use crate::common::{Backend, spawn_app};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(postgres_tests_skipped, ignore = "TEST_DATABASE_URL is not set")]
async fn every_postgresql_connection_of_the_service_has_tcp_nodelay() {
    let app = spawn_app(Backend::Postgres).await;
    // A write and a read, so that the writer's and the readers' connections are open.
    let account = app.create_account("Sockets").await;
    app.all_users(&account.account_id).await;

    // A plain sqlx connection, beside the service's: its socket keeps Nagle's algorithm.
    let mut plain = sqlx::PgConnection::connect(&app.database_url)
        .await
        .expect("a plain connection");
    let (plain_port, server_port): (i32, i32) =
        sqlx::query_as("SELECT inet_client_port(), inet_server_port()")
            .fetch_one(&mut plain)
            .await
            .expect("ports");
    let service_ports: Vec<i32> = sqlx::query_scalar(
        "SELECT client_port FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid() AND client_port IS NOT NULL",
    )
    .fetch_all(&mut plain)
    .await
    .expect("the service's connections");

    let (mut service_sockets, mut plain_sockets) = (0, 0);
    for_each_tcp_socket(|socket, local, remote| {
        if i32::from(remote) != server_port {
            return;
        }
        let nodelay = socket.tcp_nodelay().expect("TCP_NODELAY is readable");
        if i32::from(local) == plain_port {
            plain_sockets += 1;
            assert!(!nodelay, "the check tells a plain sqlx socket apart");
        } else if service_ports.contains(&i32::from(local)) {
            service_sockets += 1;
            assert!(
                nodelay,
                "the service's connection from port {local} has Nagle on"
            );
        }
    });
    assert_eq!(plain_sockets, 1);
    assert!(
        service_sockets >= 2,
        "the service's connections were found: {service_sockets} of {service_ports:?}"
    );
}
