//! The project's own word lists for people and places, shared by every domain's generator.
//!
//! The lists are deliberately varied (many origins, many regions) so that generated
//! conversations do not collapse onto a handful of names; they are plain data, and every
//! choice among them goes through the caller's seeded generator.

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};

#[rustfmt::skip]
pub const FIRST_NAMES: &[&str] = &[
    "Aarav", "Abigail", "Adaeze", "Ahmed", "Aiko", "Alejandro", "Amara", "Anders", "Anika", "Arjun",
    "Beatriz", "Benjamin", "Bilal", "Bronwyn", "Camila", "Carlos", "Chidi", "Chloe", "Daniel", "Dmitri",
    "Elena", "Elif", "Emeka", "Emily", "Esther", "Farah", "Felix", "Fiona", "Gabriel", "Grace",
    "Hana", "Hamza", "Harper", "Hugo", "Ines", "Isaac", "Ivy", "Jamal", "Javier", "Jin",
    "Joanna", "Jonah", "Kai", "Kavya", "Keanu", "Laila", "Leon", "Lucia", "Luka", "Maya",
    "Mateo", "Mei", "Miguel", "Mira", "Nadia", "Naveen", "Nia", "Noor", "Oliver", "Omar",
    "Oskar", "Paloma", "Priya", "Quinn", "Rafael", "Rania", "Rosa", "Ruth", "Samuel", "Santiago",
    "Sanjay", "Selin", "Sione", "Sofia", "Tariq", "Thea", "Tomas", "Uma", "Valentina", "Viktor",
    "Wei", "Wren", "Xavier", "Yasmin", "Yusuf", "Zainab", "Zoe", "Theo", "Marisol", "Kofi",
];

#[rustfmt::skip]
pub const LAST_NAMES: &[&str] = &[
    "Abara", "Adeyemi", "Alvarez", "Andersson", "Bauer", "Bianchi", "Brennan", "Castillo", "Chen", "Costa",
    "Dasgupta", "Delgado", "Dubois", "Eriksen", "Fernandes", "Fischer", "Fontaine", "Gallagher", "Gupta", "Haddad",
    "Hansen", "Herrera", "Hoang", "Ibrahim", "Ito", "Jensen", "Kaur", "Kim", "Kowalski", "Kuznetsov",
    "Larsen", "Lindqvist", "Lopez", "Mahmoud", "Malik", "Moreau", "Morales", "Murphy", "Nakamura", "Nguyen",
    "Novak", "Obi", "Okafor", "Olsen", "Ortega", "Park", "Patel", "Pereira", "Petrov", "Quispe",
    "Ramos", "Reyes", "Romano", "Rossi", "Sato", "Schmidt", "Shah", "Silva", "Sokolov", "Suzuki",
    "Tan", "Torres", "Tran", "Vargas", "Vasquez", "Wagner", "Walsh", "Weber", "Wong", "Yamamoto",
    "Yilmaz", "Zhang", "Zielinski", "Mensah", "Osei", "Kealoha", "Fitzgerald", "Nowak", "Lambert", "Cohen",
];

#[rustfmt::skip]
const STREET_NAMES: &[&str] = &[
    "Alder", "Aspen", "Bayview", "Birch", "Bluebell", "Canyon", "Cedar Ridge", "Chestnut", "Clover", "Cobblestone",
    "Copper", "Cypress", "Dogwood", "Eastgate", "Elm", "Fairview", "Foxglove", "Garnet", "Hawthorn", "Heron",
    "Highland", "Juniper", "Kestrel", "Lakeshore", "Linden", "Magnolia", "Maple Hollow", "Meadowlark", "Mill Creek", "Orchard",
    "Pinecrest", "Quarry", "Redwood", "Riverbend", "Rosewood", "Sage", "Silver Lake", "Spruce", "Summit", "Sycamore",
    "Tamarack", "Thistle", "Union", "Valley View", "Walnut", "Willow", "Windmill", "Wisteria",
];

#[rustfmt::skip]
const STREET_KINDS: &[&str] = &["Street", "Avenue", "Road", "Lane", "Drive", "Court", "Boulevard", "Way", "Place", "Terrace"];

/// A city, its state's postal abbreviation, and the first three digits of its zip codes.
pub struct City {
    pub name: &'static str,
    pub state: &'static str,
    pub zip_prefix: &'static str,
}

const fn city(name: &'static str, state: &'static str, zip_prefix: &'static str) -> City {
    City { name, state, zip_prefix }
}

#[rustfmt::skip]
pub const CITIES: &[City] = &[
    city("Portland", "OR", "972"),
    city("Seattle", "WA", "981"),
    city("Spokane", "WA", "992"),
    city("Boise", "ID", "837"),
    city("Sacramento", "CA", "958"),
    city("Oakland", "CA", "946"),
    city("San Diego", "CA", "921"),
    city("Fresno", "CA", "937"),
    city("Reno", "NV", "895"),
    city("Salt Lake City", "UT", "841"),
    city("Tucson", "AZ", "857"),
    city("Albuquerque", "NM", "871"),
    city("Denver", "CO", "802"),
    city("Omaha", "NE", "681"),
    city("Wichita", "KS", "672"),
    city("Tulsa", "OK", "741"),
    city("Austin", "TX", "787"),
    city("El Paso", "TX", "799"),
    city("Houston", "TX", "770"),
    city("Minneapolis", "MN", "554"),
    city("Madison", "WI", "537"),
    city("Milwaukee", "WI", "532"),
    city("Des Moines", "IA", "503"),
    city("St. Louis", "MO", "631"),
    city("Chicago", "IL", "606"),
    city("Indianapolis", "IN", "462"),
    city("Columbus", "OH", "432"),
    city("Cleveland", "OH", "441"),
    city("Detroit", "MI", "482"),
    city("Louisville", "KY", "402"),
    city("Nashville", "TN", "372"),
    city("Memphis", "TN", "381"),
    city("New Orleans", "LA", "701"),
    city("Birmingham", "AL", "352"),
    city("Atlanta", "GA", "303"),
    city("Charlotte", "NC", "282"),
    city("Raleigh", "NC", "276"),
    city("Richmond", "VA", "232"),
    city("Baltimore", "MD", "212"),
    city("Pittsburgh", "PA", "152"),
    city("Philadelphia", "PA", "191"),
    city("Newark", "NJ", "071"),
    city("Brooklyn", "NY", "112"),
    city("Buffalo", "NY", "142"),
    city("Hartford", "CT", "061"),
    city("Providence", "RI", "029"),
    city("Boston", "MA", "021"),
    city("Burlington", "VT", "054"),
    city("Tampa", "FL", "336"),
    city("Jacksonville", "FL", "322"),
];

/// A person's name.
pub struct Person {
    pub first: &'static str,
    pub last: &'static str,
}

pub fn person(rng: &mut ChaCha8Rng) -> Person {
    Person { first: pick(rng, FIRST_NAMES), last: pick(rng, LAST_NAMES) }
}

/// One element of a list; the lists passed here are non-empty constants.
pub fn pick<T: Copy>(rng: &mut ChaCha8Rng, list: &[T]) -> T {
    list[rng.random_range(0..list.len())]
}

/// A postal address in τ-bench's shape: `address1`, `address2` (may be empty), `city`,
/// `country`, `state`, `zip`.
pub fn address(rng: &mut ChaCha8Rng) -> Value {
    let place = &CITIES[rng.random_range(0..CITIES.len())];
    let address1 = format!("{} {} {}", rng.random_range(10..9990), pick(rng, STREET_NAMES), pick(rng, STREET_KINDS));
    let address2 = match rng.random_range(0..10) {
        0..=3 => format!("Suite {}", rng.random_range(100..999)),
        4..=6 => format!("Apt {}{}", rng.random_range(1..30), pick(rng, &["A", "B", "C", "D"])),
        7 => format!("Unit {}", rng.random_range(1..400)),
        _ => String::new(),
    };
    json!({
        "address1": address1,
        "address2": address2,
        "city": place.name,
        "country": "USA",
        "state": place.state,
        "zip": format!("{}{:02}", place.zip_prefix, rng.random_range(1..100)),
    })
}

/// An email address made from a name: `first.last1234@example.com` (always the reserved
/// example domain, so no generated address can belong to a real person).
pub fn email(rng: &mut ChaCha8Rng, who: &Person) -> String {
    format!("{}.{}{}@example.com", who.first.to_lowercase(), who.last.to_lowercase(), rng.random_range(1000..10000))
}

/// A date of birth `YYYY-MM-DD` between the given years, inclusive.
pub fn date_of_birth(rng: &mut ChaCha8Rng, from_year: u32, to_year: u32) -> String {
    let month = rng.random_range(1..=12u32);
    let days = match month {
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    format!("{}-{month:02}-{:02}", rng.random_range(from_year..=to_year), rng.random_range(1..=days))
}
