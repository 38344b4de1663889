-- Serialises monitors claiming a retraining: IRIS has no BEGIN IMMEDIATE, and its row locks do not stop
-- two monitors from both reading "no recent trigger" and both inserting one. A second claimer waits here
-- (at most 30 s, then SQLCODE -110) and then sees the first one's trigger. Readers are not blocked.
LOCK TABLE retrain_triggers IN EXCLUSIVE MODE WAIT 30
