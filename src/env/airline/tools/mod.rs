//! One module per airline tool, each exposing `pub const TOOL: Tool`.

pub mod book_reservation;
pub mod cancel_reservation;
pub mod get_reservation_details;
pub mod get_user_details;
pub mod list_all_airports;
pub mod search_direct_flight;
pub mod search_onestop_flight;
pub mod send_certificate;
pub mod update_reservation_baggages;
pub mod update_reservation_flights;
pub mod update_reservation_passengers;
