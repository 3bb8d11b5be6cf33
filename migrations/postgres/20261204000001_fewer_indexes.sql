-- Fewer indexes written per webhook (each one is B-tree work and log pages
-- in every commit):
-- events_pending is covered by events_by_client, whose first column and
-- condition are the same (counting a connection's pending events reads it);
-- clients_by_state leaves out pending clients, the state every new client
-- is stored in at ingest. Listing pending clients reads the primary key in
-- client order and filters by state.
DROP INDEX events_pending;
DROP INDEX clients_by_state;
CREATE INDEX clients_by_state ON clients (connection_id, state, client_id) WHERE state <> 'pending';
