-- SQLite: the claim's BEGIN IMMEDIATE already serialises claimers (one writer at a time); nothing to lock.
SELECT 1
