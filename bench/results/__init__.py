"""The results contract: schema, the Measurement/Run views, the atomic writer and the one reader."""
