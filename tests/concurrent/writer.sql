\set id random(1, 3000)
\set br random(0, 9)
\set b random(0, 120)
\set kind random(1, 10)
BEGIN;
INSERT INTO acct VALUES (:id, :br, :b, 'c') ON CONFLICT (id) DO UPDATE SET bal = excluded.bal, branch = excluded.branch;
UPDATE acct SET bal = bal + 1, tag = CASE WHEN :kind > 5 THEN 'a' ELSE tag END WHERE id = (:id * 7) % 3000;
DELETE FROM acct WHERE id = (:id * 13) % 3000 AND :kind < 3;
UPDATE branch SET bonus = bonus + 1 WHERE id = :br AND :kind = 10;
COMMIT;
