-- explain: the relational plan, one operator a row.
CREATE TABLE ea (id int, g int, x numeric);
CREATE TABLE eb (id int, y text);
SELECT id, parent_id, depth, operator, detail, incremental, rule
  FROM tide.explain('SELECT a.g, count(*), sum(a.x) FROM ea a JOIN eb b ON a.id = b.id WHERE b.y <> ''z'' GROUP BY a.g HAVING count(*) > 1');
SELECT id, parent_id, operator, detail FROM tide.explain('SELECT id FROM ea UNION ALL SELECT id FROM eb');
SELECT id, parent_id, operator, detail FROM tide.explain('SELECT DISTINCT g FROM ea WHERE EXISTS (SELECT 1 FROM eb WHERE eb.id = ea.id)');
SELECT id, parent_id, operator, detail FROM tide.explain('SELECT a.id, b.y FROM ea a LEFT JOIN eb b USING (id)');
SELECT id, parent_id, operator, detail FROM tide.explain('WITH c AS (SELECT g, max(x) AS m FROM ea GROUP BY g) SELECT * FROM c WHERE m > 0');
SELECT id, parent_id, operator, detail FROM tide.explain('SELECT id, x FROM ea ORDER BY x DESC NULLS LAST, id LIMIT 3');
SELECT id, parent_id, operator, detail FROM tide.explain('SELECT id, rank() OVER (PARTITION BY g ORDER BY x), sum(x) OVER (ORDER BY id DESC) + 1 AS s FROM ea');
SELECT id, parent_id, operator, detail FROM tide.explain('SELECT e1.id FROM ea e1, ea e2 WHERE e1.id = e2.g');
-- ORDER BY without LIMIT: ignored, with a NOTICE
SELECT operator FROM tide.explain('SELECT id FROM ea ORDER BY id');
-- the reason is given for what is not maintained incrementally
SELECT operator, incremental, reason FROM tide.explain('SELECT a.id, b.y FROM ea a FULL JOIN eb b ON b.id < a.id') WHERE NOT incremental;
-- a set operation nested in another is a branch of its own
SELECT id, parent_id, operator, incremental FROM tide.explain('SELECT id FROM ea UNION ALL (SELECT id FROM eb EXCEPT SELECT id FROM ea)');
SELECT DISTINCT incremental, reason FROM tide.explain('SELECT id FROM ea');
-- and the locks a view's maintenance takes
SELECT lock FROM tide.explain('SELECT g, count(*) FROM ea GROUP BY g') WHERE id = 1;
SELECT lock FROM tide.explain('SELECT a.g FROM ea a JOIN eb b ON a.id = b.id') WHERE id = 1;
SELECT lock FROM tide.explain('SELECT g FROM ea') WHERE id = 1;
