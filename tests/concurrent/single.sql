\set id random(1, 3000)
\set br random(0, 9)
\set b random(0, 120)
INSERT INTO acct VALUES (:id, :br, :b, 'c') ON CONFLICT (id) DO UPDATE SET bal = excluded.bal, branch = excluded.branch;
