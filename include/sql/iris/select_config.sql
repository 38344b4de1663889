SELECT config_value FROM ml_config WHERE config_key = ?
