SELECT COUNT(*) FROM point_samples
