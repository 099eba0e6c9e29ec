-- The backend serving this connection, and the client port it sees (NULL over a Unix socket).
SELECT pg_backend_pid(), inet_client_port();
