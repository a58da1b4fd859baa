-- vecfusion quickstart: a versioned vector dataset, queried with plain SQL.
-- Run it with:  rm -rf quickstart_data && cargo run --bin vecfusion -- -f sql/quickstart.sql
-- (it creates ./quickstart_data/items; delete that directory to start over)

-- 1. A dataset: a directory of immutable versions. FLOAT[128] is a fixed-size vector column.
CREATE EXTERNAL TABLE items (id BIGINT NOT NULL, label VARCHAR, embedding FLOAT[128])
  STORED AS VECFUSION LOCATION 'quickstart_data/items';

-- 2. 100,000 clustered vectors from the built-in generator (one INSERT = one new version).
INSERT INTO items
  SELECT id, CASE WHEN id % 10 = 0 THEN 'spam' ELSE 'ok' END, vector
  FROM random_vectors(100000, 128, 32, 7);

-- 3. A second INSERT: a second fragment and a third version.
INSERT INTO items
  SELECT 1000000 + id, 'late', vector FROM random_vectors(1000, 128, 32, 8);

SELECT label, count(*) AS n FROM items GROUP BY label ORDER BY label;

-- 4. Delete writes a deletion vector; no data file is rewritten.
DELETE FROM items WHERE label = 'spam';

-- 5. Exact nearest neighbours of row 42's vector (a brute-force scan: the exact plan).
SELECT i.id, i.label, round(l2_distance(i.embedding, q.embedding), 4) AS distance
FROM items i, (SELECT embedding FROM items WHERE id = 42) q
ORDER BY distance
LIMIT 10;

-- 6. Every version of the dataset, and time travel to the one before the DELETE.
SELECT version, committed_at, operation, rows_added, rows_deleted, total_rows
FROM vecfusion_versions('items') ORDER BY version;

SELECT count(*) AS spam_rows_before_delete FROM items VERSION AS OF 3 WHERE label = 'spam';
SELECT count(*) AS spam_rows_now FROM items WHERE label = 'spam';

-- 7. An IVF_PQ index, trained on the CPU (the shell draws a progress bar), recorded as a
--    new version of the dataset.
CREATE VECTOR INDEX items_idx ON items (embedding) USING IVF_PQ
  WITH (num_partitions = 64, num_sub_vectors = 16, accelerator = 'cpu');
SHOW VECTOR INDEXES FROM items;

-- 8. The same top-10 as step 5, now served by the index (see EXPLAIN), with a filter applied
--    before the top-k, and exact re-ranking of 4 candidates per result.
SET vecfusion.nprobes = 16;
SET vecfusion.refine_factor = 4;
EXPLAIN SELECT id FROM items WHERE label <> 'late'
  ORDER BY l2_distance(embedding, [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.3, 1.4, 1.5, 1.6, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.3, 1.4, 1.5, 1.6, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.3, 1.4, 1.5, 1.6, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.3, 1.4, 1.5, 1.6, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.3, 1.4, 1.5, 1.6, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.3, 1.4, 1.5, 1.6, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.3, 1.4, 1.5, 1.6, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.3, 1.4, 1.5, 1.6]) LIMIT 10;

SELECT i.id, i.label, round(d, 4) AS distance
FROM vector_search('items', 'embedding',
       [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.3, 1.4, 1.5, 1.6, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.3, 1.4, 1.5, 1.6, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.3, 1.4, 1.5, 1.6, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.3, 1.4, 1.5, 1.6, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.3, 1.4, 1.5, 1.6, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.3, 1.4, 1.5, 1.6, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.3, 1.4, 1.5, 1.6, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.3, 1.4, 1.5, 1.6],
       5) AS i(id, label, embedding, d)
WHERE i.label <> 'late';
