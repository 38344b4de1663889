-- Without IMMEDIATE, IRIS keeps the lock until the current transaction ends (commit or rollback), so the
-- next claimer reads the committed trigger.
UNLOCK TABLE retrain_triggers IN EXCLUSIVE MODE
