//! Every PostgreSQL connection of the service sends without Nagle's delay (TCP_NODELAY): a
//! statement larger than one TCP segment (a batch's multi-row INSERT) would otherwise wait
//! about 40 ms for the server's delayed ACK. sqlx sets it itself (0.9.0 did not; 0.9.1 does
//! again), so a plain sqlx connection must have it too.
#![cfg(target_os = "linux")] // the sockets are found through /proc/self/fd

use sqlx::Connection;

use crate::common::{Backend, spawn_app};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(postgres_tests_skipped, ignore = "TEST_DATABASE_URL is not set")]
async fn every_postgresql_connection_of_the_service_has_tcp_nodelay() {
    let app = spawn_app(Backend::Postgres).await;
    // A write and a read, so that the writer's and the readers' connections are open.
    let account = app.create_account("Sockets").await;
    app.all_users(&account.account_id).await;

    // A plain sqlx connection, beside the service's: sqlx itself turns Nagle's algorithm off.
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
            assert!(
                nodelay,
                "a plain sqlx socket has Nagle on: sqlx no longer sets TCP_NODELAY"
            );
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

/// Calls `visit` with each connected TCP socket of this process and its local and remote ports.
fn for_each_tcp_socket(mut visit: impl FnMut(&socket2::SockRef<'_>, u16, u16)) {
    use std::os::fd::{BorrowedFd, RawFd};

    let Ok(entries) = std::fs::read_dir("/proc/self/fd") else {
        return;
    };
    for entry in entries.flatten() {
        let Ok(fd) = entry.file_name().to_string_lossy().parse::<RawFd>() else {
            continue;
        };
        // SAFETY: the descriptor is only borrowed for the socket calls below. If it was closed
        // meanwhile they fail (EBADF); if its number was reused for another socket, that socket
        // is looked at (and at worst gets TCP_NODELAY, which is harmless). Nothing is closed.
        let fd = unsafe { BorrowedFd::borrow_raw(fd) };
        let socket = socket2::SockRef::from(&fd);
        let port = |address: std::io::Result<socket2::SockAddr>| {
            address.ok().and_then(|a| a.as_socket()).map(|a| a.port())
        };
        if let (Some(local), Some(remote)) = (port(socket.local_addr()), port(socket.peer_addr())) {
            visit(&socket, local, remote);
        }
    }
}
