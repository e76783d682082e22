mod conn;
mod sim;
mod transfer;
