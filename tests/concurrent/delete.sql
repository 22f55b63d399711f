\set id random(1, 3000)
DELETE FROM acct WHERE id = :id;
