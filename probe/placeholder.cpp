// Health probing lands here with the failover issue.
