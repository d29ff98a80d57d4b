//! TCP_NODELAY on every PostgreSQL connection. sqlx 0.9.0 no longer sets it on its sockets
//! (transact-rs/sqlx#4335, fixed upstream after that release), so a message larger than one
//! TCP segment, such as a multi-row INSERT or a batch's `IN (…)` list, waits for the server's
//! delayed ACK: about 40 ms a statement on Linux (Nagle's algorithm). Each new connection asks
//! the server for its two ports, which name its socket among this process's descriptors.

use sqlx::postgres::PgConnection;

/// Called on every new connection of a pool. A connection over a Unix socket has no ports and
/// needs nothing.
pub(super) async fn disable_nagle(connection: &mut PgConnection) -> Result<(), sqlx::Error> {
    let (client, server): (Option<i32>, Option<i32>) =
        sqlx::query_as("SELECT inet_client_port(), inet_server_port()")
            .fetch_one(&mut *connection)
            .await?;
    if let (Some(client), Some(server)) = (client, server) {
        let (Ok(client), Ok(server)) = (u16::try_from(client), u16::try_from(server)) else {
            return Ok(());
        };
        if !set_nodelay(client, server) {
            tracing::warn!(
                client_port = client,
                "could not set TCP_NODELAY on a PostgreSQL connection; large statements may wait for delayed ACKs"
            );
        }
    }
    Ok(())
}

/// Sets TCP_NODELAY on this process's TCP socket from local port `local` to remote port
/// `remote`; false if there is none.
#[cfg(target_os = "linux")]
pub(crate) fn set_nodelay(local: u16, remote: u16) -> bool {
    let mut found = false;
    for_each_tcp_socket(|socket, local_port, remote_port| {
        if (local_port, remote_port) == (local, remote) {
            found = socket.set_tcp_nodelay(true).is_ok();
        }
    });
    found
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn set_nodelay(_local: u16, _remote: u16) -> bool {
    false
}

/// Calls `visit` with each connected TCP socket of this process and its local and remote ports.
#[cfg(target_os = "linux")]
pub fn for_each_tcp_socket(mut visit: impl FnMut(&socket2::SockRef<'_>, u16, u16)) {
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
