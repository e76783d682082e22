mod sim;
mod transfer;
