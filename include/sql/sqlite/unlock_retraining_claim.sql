-- SQLite: the BEGIN IMMEDIATE lock ends with the transaction; nothing to unlock.
SELECT 1
