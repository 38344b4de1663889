UPDATE training_runs SET finished_at = ?, status = ? WHERE run_id = ?
