//! The retail catalogue: fifty product types, each with the options a shopper would choose
//! between and a plausible price band. Variants are drawn from the product of the option
//! lists; within an option list, later values are the premium ones (bigger, faster, better
//! material), which the generator turns into a small price step.

/// One product type: its name, its option axes (name, values), and its price band in dollars.
pub struct ProductType {
    pub name: &'static str,
    pub options: &'static [(&'static str, &'static [&'static str])],
    pub price: (u32, u32),
}

const fn p(name: &'static str, price: (u32, u32), options: &'static [(&'static str, &'static [&'static str])]) -> ProductType {
    ProductType { name, options, price }
}

const COLORS: &[&str] = &["black", "white", "gray", "navy", "red", "green"];
const SIZES: &[&str] = &["XS", "S", "M", "L", "XL", "XXL"];

#[rustfmt::skip]
pub const PRODUCT_TYPES: &[ProductType] = &[
    p("Hoodie", (35, 80), &[("color", COLORS), ("size", SIZES), ("fit", &["regular", "relaxed"])]),
    p("Rain Jacket", (60, 190), &[("color", &["yellow", "navy", "olive", "black"]), ("size", SIZES), ("hood", &["fixed", "packable"])]),
    p("Denim Jeans", (40, 120), &[("waist", &["28", "30", "32", "34", "36", "38"]), ("cut", &["slim", "straight", "bootcut"]), ("wash", &["light", "medium", "dark"])]),
    p("Wool Socks", (12, 30), &[("size", &["S", "M", "L"]), ("pack", &["3 pairs", "6 pairs"]), ("cushion", &["light", "full"])]),
    p("Trail Running Shoes", (80, 180), &[("size", &["7", "8", "9", "10", "11", "12"]), ("color", &["gray", "orange", "blue"]), ("waterproof", &["no", "yes"])]),
    p("Leather Boots", (120, 320), &[("size", &["7", "8", "9", "10", "11"]), ("color", &["brown", "black", "tan"]), ("lining", &["unlined", "shearling"])]),
    p("Sun Hat", (18, 55), &[("size", &["S/M", "L/XL"]), ("material", &["cotton", "straw", "nylon"]), ("brim", &["medium", "wide"])]),
    p("Canvas Tote", (15, 45), &[("color", &["natural", "black", "mustard"]), ("size", &["small", "large"]), ("closure", &["open", "zip"])]),
    p("Hiking Backpack", (60, 240), &[("capacity", &["20L", "30L", "45L", "60L"]), ("color", &["green", "red", "black"]), ("frame", &["frameless", "internal"])]),
    p("Carry-On Suitcase", (90, 380), &[("shell", &["polycarbonate", "aluminum", "nylon"]), ("color", &["silver", "black", "teal"]), ("wheels", &["two", "four"])]),
    p("Stand Mixer", (180, 520), &[("color", &["white", "red", "silver"]), ("bowl", &["4.5 qt", "5.5 qt", "7 qt"]), ("power", &["300W", "500W", "800W"])]),
    p("Blender", (40, 260), &[("capacity", &["1L", "1.5L", "2L"]), ("speeds", &["3", "6", "10"]), ("jar", &["plastic", "glass"])]),
    p("Air Fryer", (60, 220), &[("capacity", &["3 qt", "5 qt", "8 qt"]), ("color", &["black", "white"]), ("display", &["dial", "digital"])]),
    p("Chef Knife", (25, 210), &[("blade length", &["6 inch", "8 inch", "10 inch"]), ("steel", &["stainless", "carbon", "damascus"]), ("handle", &["plastic", "wood"])]),
    p("Cast Iron Skillet", (20, 90), &[("diameter", &["8 inch", "10 inch", "12 inch"]), ("finish", &["pre-seasoned", "enameled"]), ("handle", &["single", "dual"])]),
    p("Pour-Over Coffee Set", (25, 95), &[("material", &["ceramic", "glass", "steel"]), ("size", &["1 cup", "4 cup"]), ("filter", &["paper", "reusable"])]),
    p("Toaster", (25, 150), &[("slots", &["2", "4"]), ("color", &["silver", "black", "cream"]), ("features", &["basic", "bagel mode"])]),
    p("Dinnerware Set", (45, 210), &[("pieces", &["12", "16", "24"]), ("material", &["stoneware", "porcelain"]), ("color", &["white", "speckled", "blue"])]),
    p("Robot Vacuum", (180, 720), &[("navigation", &["gyro", "camera", "lidar"]), ("dock", &["standard", "self-emptying"]), ("color", &["black", "white"])]),
    p("Humidifier", (35, 160), &[("tank", &["2L", "4L", "6L"]), ("mist", &["cool", "warm"]), ("control", &["knob", "app"])]),
    p("Ceiling Fan", (90, 380), &[("blade span", &["42 inch", "52 inch", "60 inch"]), ("finish", &["white", "bronze", "nickel"]), ("light", &["none", "LED"])]),
    p("Floor Lamp", (45, 230), &[("style", &["arc", "tripod", "torchiere"]), ("finish", &["black", "brass", "walnut"]), ("bulb", &["warm white", "tunable"])]),
    p("Duvet Cover", (40, 160), &[("size", &["twin", "queen", "king"]), ("fabric", &["cotton percale", "linen", "sateen"]), ("color", &["white", "sand", "sage"])]),
    p("Memory Foam Pillow", (30, 110), &[("firmness", &["soft", "medium", "firm"]), ("size", &["standard", "king"]), ("cover", &["polyester", "bamboo"])]),
    p("Standing Desk", (220, 780), &[("top", &["laminate", "bamboo", "walnut"]), ("width", &["48 inch", "60 inch", "72 inch"]), ("motor", &["single", "dual"])]),
    p("Ergonomic Chair", (150, 640), &[("upholstery", &["mesh", "fabric", "leather"]), ("color", &["black", "gray", "blue"]), ("headrest", &["no", "yes"])]),
    p("Bookcase", (70, 330), &[("shelves", &["3", "4", "5"]), ("wood", &["pine", "oak", "walnut"]), ("finish", &["natural", "white", "black"])]),
    p("Monitor", (140, 820), &[("size", &["24 inch", "27 inch", "32 inch"]), ("resolution", &["1080p", "1440p", "4K"]), ("panel", &["VA", "IPS"])]),
    p("Wireless Mouse", (18, 120), &[("color", &["black", "white", "pink"]), ("connection", &["USB receiver", "Bluetooth"]), ("buttons", &["3", "6"])]),
    p("Keyboard", (35, 230), &[("layout", &["compact", "tenkeyless", "full"]), ("switch", &["membrane", "brown", "red", "blue"]), ("backlight", &["none", "white", "RGB"])]),
    p("Noise-Cancelling Headphones", (90, 420), &[("color", &["black", "silver", "midnight blue"]), ("fit", &["on-ear", "over-ear"]), ("battery", &["20 hours", "30 hours"])]),
    p("Smart Speaker", (40, 260), &[("size", &["mini", "standard", "max"]), ("color", &["charcoal", "chalk", "sky"]), ("assistant", &["none", "built-in"])]),
    p("Tablet", (190, 1100), &[("screen", &["8 inch", "10 inch", "12 inch"]), ("storage", &["64GB", "128GB", "256GB", "512GB"]), ("connectivity", &["Wi-Fi", "Wi-Fi + cellular"])]),
    p("Laptop", (520, 2300), &[("screen", &["13 inch", "14 inch", "16 inch"]), ("processor", &["4-core", "8-core", "12-core"]), ("memory", &["8GB", "16GB", "32GB"]), ("storage", &["256GB", "512GB", "1TB"])]),
    p("Phone Case", (12, 55), &[("model", &["standard", "plus", "pro"]), ("material", &["silicone", "leather", "clear"]), ("color", &["black", "red", "clear"])]),
    p("Power Bank", (20, 110), &[("capacity", &["5000mAh", "10000mAh", "20000mAh"]), ("ports", &["USB-C", "USB-C + USB-A"]), ("wireless", &["no", "yes"])]),
    p("Fitness Tracker", (40, 230), &[("band", &["silicone", "woven", "metal"]), ("color", &["black", "rose", "slate"]), ("gps", &["no", "yes"])]),
    p("Instant Camera", (60, 190), &[("color", &["mint", "lilac", "black"]), ("film", &["mini", "square", "wide"]), ("flash", &["auto", "manual"])]),
    p("Drone", (150, 1300), &[("camera", &["2.7K", "4K", "6K"]), ("range", &["2 km", "6 km", "10 km"]), ("kit", &["basic", "fly more"])]),
    p("Electric Scooter", (280, 1100), &[("range", &["15 miles", "25 miles", "40 miles"]), ("color", &["black", "white"]), ("tires", &["solid", "pneumatic"])]),
    p("Road Bike", (450, 2600), &[("frame size", &["50cm", "54cm", "56cm", "58cm"]), ("frame", &["aluminum", "carbon"]), ("groupset", &["entry", "mid", "pro"])]),
    p("Tent", (80, 520), &[("capacity", &["1-person", "2-person", "4-person"]), ("season", &["3-season", "4-season"]), ("color", &["green", "orange", "gray"])]),
    p("Sleeping Bag", (50, 330), &[("temperature", &["40F", "20F", "0F"]), ("fill", &["synthetic", "down"]), ("length", &["regular", "long"])]),
    p("Kayak Paddle", (60, 280), &[("length", &["220cm", "230cm", "240cm"]), ("shaft", &["aluminum", "fiberglass", "carbon"]), ("blade", &["plastic", "nylon"])]),
    p("Adjustable Dumbbells", (90, 480), &[("max weight", &["25 lb", "50 lb", "90 lb"]), ("mechanism", &["spin-lock", "dial"]), ("pair", &["single", "pair"])]),
    p("Exercise Bike", (260, 1400), &[("resistance", &["magnetic", "air", "friction"]), ("screen", &["none", "LCD", "touchscreen"]), ("color", &["black", "white"])]),
    p("Board Game", (20, 90), &[("edition", &["standard", "deluxe"]), ("players", &["2-4", "2-6"]), ("language", &["English", "Spanish", "French"])]),
    p("Watercolor Set", (15, 120), &[("colors", &["12", "24", "48"]), ("format", &["pans", "tubes"]), ("grade", &["student", "artist"])]),
    p("Garden Hose", (20, 95), &[("length", &["25 ft", "50 ft", "100 ft"]), ("material", &["vinyl", "rubber", "expandable"]), ("nozzle", &["none", "7-pattern"])]),
    p("Dog Harness", (18, 70), &[("size", &["XS", "S", "M", "L", "XL"]), ("color", &["red", "blue", "black", "camo"]), ("padding", &["light", "heavy"])]),
];

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn fifty_distinct_products_with_enough_combinations() {
        assert_eq!(PRODUCT_TYPES.len(), 50);
        let names: BTreeSet<_> = PRODUCT_TYPES.iter().map(|t| t.name).collect();
        assert_eq!(names.len(), 50, "product names must be distinct");
        for t in PRODUCT_TYPES {
            let combos: usize = t.options.iter().map(|(_, v)| v.len()).product();
            assert!(combos >= 12, "{} has only {combos} option combinations", t.name);
            assert!(t.price.0 < t.price.1, "{} has an empty price band", t.name);
        }
    }
}
