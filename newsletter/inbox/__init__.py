"""Commands and bounce reports by email: mailbox sources, parsing, commands, replies, the poll."""
