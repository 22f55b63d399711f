\set id random(1, 3000)
UPDATE acct SET bal = bal + 1 WHERE id = :id;
