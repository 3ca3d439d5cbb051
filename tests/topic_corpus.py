"""Topic documents whose words mislead: labelled queries where keyword overlap points at the wrong topic.

Thirty topics in ten families; the topics of a family share words with different meanings ("queen" in
royal history, chess and beekeeping; "java" in programming and coffee; "Jupiter" and "Venus" in astronomy
and Roman myth). Documents are a title and a few sentences drawn from their topic (a seed picks which),
so the same generator gives a second library with other documents for held-out checks. Every topic has
one query; the queries of families 0-4 are the `tune` half (fusion constants may be chosen on them),
families 5-9 the `held_out` half (figures only). Many queries are traps: their words occur more often
in another topic of the family than in the topic that answers them, so only meaning finds the answer.
Used by bench/peers/pixeltable.py and the fusion tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Topic:
    name: str
    family: int
    query: str
    trap: bool  # the query's words occur more in a sibling topic than in this one
    titles: tuple[str, ...]
    sentences: tuple[str, ...]


TOPICS: tuple[Topic, ...] = (
    # family 0: king / queen
    Topic(
        "monarchy",
        0,
        "kings and queens",
        True,
        ("A history of the royal house", "Succession and the crown", "Coronations through the centuries"),
        (
            "The coronation took place in the abbey, and the new monarch swore the ancient oath.",
            "The royal dynasty ruled the realm for three centuries before the civil war.",
            "The throne passed to the eldest daughter after her father's death.",
            "Parliament slowly limited the powers of the crown.",
            "A regent governed the country while the young prince was still a child.",
            "Royal weddings sealed alliances between rival noble houses.",
            "The palace archives record every disputed succession.",
            "Her long reign saw the empire expand overseas.",
            "The old king abdicated in favour of his nephew.",
            "Courtiers bowed as the sovereign entered the great hall.",
        ),
    ),
    Topic(
        "chess",
        0,
        "checkmate tactics with knights and bishops",
        False,
        ("Notes from the chess club", "Endgame study", "Opening repertoire for the tournament"),
        (
            "The queen is the strongest piece on the board and should not be brought out too early.",
            "Castling moves the king to safety behind a wall of pawns.",
            "A knight fork attacked the king and the queen at the same time.",
            "Bishops control long diagonals, so open the position for them.",
            "In the endgame the king becomes an active piece.",
            "White sacrificed the queen to force checkmate in three moves.",
            "A pawn that reaches the last rank is promoted, usually to a queen.",
            "The rook belongs on the open file.",
            "Black resigned after losing the exchange in the middlegame.",
            "Our club meets on Thursdays to analyse tournament games.",
        ),
    ),
    Topic(
        "beekeeping",
        0,
        "looking after honey bees",
        False,
        ("Apiary diary", "Spring inspection of the hives", "Notes for new beekeepers"),
        (
            "The queen bee lays up to two thousand eggs a day in spring.",
            "Worker bees forage for nectar and pollen within three miles of the hive.",
            "A little smoke calms the colony before the frames are lifted.",
            "We extracted twenty kilograms of honey from the supers in August.",
            "Varroa mites weaken the brood, so we treat the hives in late summer.",
            "If the old queen fails, the workers raise a new queen from a young larva.",
            "A swarm left the apiary and settled in the apple tree.",
            "Drones do not sting and are expelled from the hive before winter.",
            "The beeswax was melted down for candles.",
            "Wear a veil and gloves when opening a strong colony.",
        ),
    ),
    # family 1: python / java
    Topic(
        "programming",
        1,
        "fixing bugs in software",
        False,
        ("Engineering notes", "Code review checklist", "Release log of the build system"),
        (
            "The Python script automates the nightly build and uploads the artifacts.",
            "Unit tests caught a regression before the release.",
            "The Java compiler reported a type error in the service class.",
            "We refactored the module so that each function does one thing.",
            "A null pointer exception crashed the server under load.",
            "Python packages are pinned in a lock file to keep builds reproducible.",
            "The debugger showed that the loop never terminated.",
            "Continuous integration runs the test suite on every commit.",
            "The Java virtual machine needed more heap for the indexing job.",
            "Code review found an off-by-one error in the pagination logic.",
        ),
    ),
    Topic(
        "reptiles",
        1,
        "python snakes in the jungle",
        True,
        ("Field guide to constrictors", "Reptile house notes", "Herpetology survey"),
        (
            "The constrictor swallowed its prey whole and digested it for a week.",
            "These serpents wrap around their victims and squeeze until they stop breathing.",
            "The reticulated snake can grow longer than six metres.",
            "Herpetologists counted the reptiles along the riverbank at night.",
            "The snake shed its skin in one piece, scales and all.",
            "Cold-blooded animals bask in the sun to warm up.",
            "The keeper fed the boa a thawed rat every fortnight.",
            "Venomous vipers hide in the leaf litter of the rainforest floor.",
            "The lizard lost its tail to escape the hawk.",
            "Tortoises and crocodiles are reptiles too.",
        ),
    ),
    Topic(
        "coffee",
        1,
        "a cup of java in the morning",
        True,
        ("Café notes", "Roasting log", "Tasting notes from the espresso bar"),
        (
            "The beans are roasted until the first crack for a light, fruity cup.",
            "The barista pulled a double espresso and steamed the milk for a flat white.",
            "Arabica grows best on cool volcanic slopes.",
            "Grind the beans just before brewing for the freshest flavour.",
            "A French press gives a heavier body than a paper filter.",
            "The café opens at seven for commuters who want their first brew.",
            "Decaffeinated beans are soaked before roasting.",
            "Latte art takes practice with the milk jug.",
            "The caffeine in two mugs keeps me awake until noon.",
            "Cold brew steeps in the fridge overnight.",
        ),
    ),
    # family 2: bank / current / charge
    Topic(
        "banking",
        2,
        "borrowing money to buy a house",
        False,
        ("Branch newsletter", "Guide to personal finance", "Mortgage advice"),
        (
            "The loan officer reviewed the mortgage application and asked for payslips.",
            "Interest rates on savings accounts rose again this quarter.",
            "The bank charges a fee when an account is overdrawn.",
            "A fixed-rate mortgage keeps the monthly repayment the same for five years.",
            "Credit scores decide how much a lender will offer.",
            "Deposits are insured up to a legal limit.",
            "The branch manager approved the small business loan.",
            "Transfers between current accounts clear within a day.",
            "The down payment for the flat came from ten years of savings.",
            "Online banking lets customers pay bills from their phone.",
        ),
    ),
    Topic(
        "river",
        2,
        "walking along the bank of a stream",
        True,
        ("River survey", "Walks in the valley", "Notes on the floodplain"),
        (
            "The river burst its banks after three days of storms.",
            "Erosion carved a deep bend into the valley floor.",
            "The current carried silt and fallen branches downstream.",
            "Otters returned to the brook once the water was cleaner.",
            "Willows on the shore hold the soil together with their roots.",
            "The footpath follows the water through the meadows to the old mill.",
            "Salmon leap the weir on their way upstream to spawn.",
            "Dragonflies hover over the reeds at the edge of the creek.",
            "After the flood the meadows were covered in mud.",
            "Kingfishers dive from the overhanging branches.",
        ),
    ),
    Topic(
        "electricity",
        2,
        "electric current and battery charge",
        False,
        ("Workshop notes on circuits", "Wiring guide", "Electronics class"),
        (
            "The circuit breaker tripped when the heater drew too much current.",
            "Voltage is the push that drives electrons through the wire.",
            "A resistor limits the current flowing to the diode.",
            "The battery holds its charge for weeks when the device is off.",
            "Alternating current reverses direction fifty times a second.",
            "Use a multimeter to check the resistance of the coil.",
            "Capacitors store charge and release it quickly.",
            "The transformer steps the mains voltage down to twelve volts.",
            "Copper wiring must be earthed to prevent shocks.",
            "Solder the terminals before closing the enclosure.",
        ),
    ),
    # family 3: mouse
    Topic(
        "peripherals",
        3,
        "choosing a keyboard and monitor for the desk",
        False,
        ("Desk setup review", "Hardware buying guide", "Office equipment notes"),
        (
            "The wireless mouse pairs over Bluetooth and lasts months on one battery.",
            "A mechanical keyboard with quiet switches suits a shared office.",
            "The monitor has a high resolution and an adjustable stand.",
            "A USB hub connects the webcam, mouse and printer to the laptop.",
            "Ergonomic mice reduce strain on the wrist.",
            "The docking station drives two external displays.",
            "Gaming mice have adjustable sensitivity and extra buttons.",
            "Adjust the screen height so your eyes are level with the top edge.",
            "The trackpad replaced the mouse on the travel laptop.",
            "Noise-cancelling headphones make video calls clearer.",
        ),
    ),
    Topic(
        "pests",
        3,
        "getting rid of a mouse in the kitchen",
        True,
        ("Pest control report", "Household hygiene tips", "Notes from the exterminator"),
        (
            "Rodents nest in wall cavities and come out at night to look for food.",
            "Traps baited with peanut butter work better than cheese.",
            "Droppings behind the fridge showed where the vermin were feeding.",
            "Rats gnaw through cables and plastic pipes.",
            "Seal gaps around pipes with steel wool so the rodents cannot squeeze in.",
            "Keep food in sealed containers and sweep up crumbs every evening.",
            "The exterminator laid poison bait in the attic and the cellar.",
            "Cockroaches hide in warm, damp corners under the sink.",
            "A single pair of mice can produce dozens of young in a year.",
            "Scratching noises in the ceiling usually mean something is living there.",
        ),
    ),
    Topic(
        "pets",
        3,
        "caring for a new kitten",
        False,
        ("Pet care handbook", "Notes from the vet", "Our new cat"),
        (
            "The kitten learned to use the litter tray within two days.",
            "The vet gave the puppy its first vaccinations.",
            "Feed young cats small meals several times a day.",
            "A scratching post saves the sofa from sharp claws.",
            "The cat chased a toy mouse around the living room.",
            "Brush long-haired breeds every week to prevent mats.",
            "Dogs need a walk at least twice a day.",
            "Microchipping helps return lost pets to their owners.",
            "The hamster runs on its wheel all night.",
            "Fresh water should always be available in the bowl.",
        ),
    ),
    # family 4: apple
    Topic(
        "orchard",
        4,
        "harvesting fruit from the trees in autumn",
        False,
        ("Orchard journal", "Fruit growers' notes", "Harvest report"),
        (
            "The apple harvest began in late September when the fruit came away easily.",
            "Cider was pressed from the windfalls in the barn.",
            "Grafting the young trees onto dwarf rootstock keeps them small.",
            "A late frost damaged the blossom on the pear trees.",
            "Pickers filled forty crates of plums in one morning.",
            "Prune fruit trees in winter while they are dormant.",
            "Codling moth larvae tunnel into the ripening fruit.",
            "The cherries were netted to keep the blackbirds away.",
            "Stored in a cool shed, the late varieties keep until spring.",
            "Bees pollinate the blossom in April.",
        ),
    ),
    Topic(
        "smartphones",
        4,
        "a new apple phone with a better camera",
        False,
        ("Gadget review", "Mobile tech news", "Phone comparison"),
        (
            "The latest handset has a brighter screen and a faster processor.",
            "The camera takes sharper photos in low light thanks to a larger sensor.",
            "Apple released a software update that improves battery life.",
            "The app store now lists more than a million applications.",
            "Wireless charging and water resistance are standard on flagship models.",
            "The phone unlocks with face recognition.",
            "Storage starts at 128 gigabytes on the base model.",
            "The tablet and the laptop sync photos through the cloud.",
            "Reviewers praised the zoom lens but not the price.",
            "The touchscreen responds even with wet fingers.",
        ),
    ),
    Topic(
        "baking",
        4,
        "apple pie recipe",
        True,
        ("Recipe card", "Baking club handout", "Sunday desserts"),
        (
            "Rub cold butter into the flour until it looks like breadcrumbs.",
            "Slice the cooking fruit thinly and toss it with cinnamon and brown sugar.",
            "Roll out the pastry and line the dish, leaving an overhang.",
            "Bake the pie for forty minutes until the crust is golden.",
            "A lattice top lets the steam escape from the filling.",
            "Serve the tart warm with custard or cream.",
            "Blind bake the case so the base does not go soggy.",
            "A pinch of nutmeg lifts the spiced filling.",
            "Brush the lid with beaten egg before it goes in the oven.",
            "Let the crumble rest for ten minutes before serving.",
        ),
    ),
    # family 5: cell
    Topic(
        "biology",
        5,
        "how living cells divide",
        False,
        ("Lecture notes in cell biology", "Lab report", "Microscopy practical"),
        (
            "The cell membrane controls what enters and leaves the cell.",
            "Mitochondria turn sugar into energy the cell can use.",
            "During mitosis the chromosomes line up and are pulled apart.",
            "DNA is copied before the nucleus splits in two.",
            "Under the microscope the stained tissue showed hundreds of nuclei.",
            "Ribosomes build proteins from the instructions in messenger RNA.",
            "Stem cells can become many different tissues.",
            "Bacteria reproduce by binary fission.",
            "Enzymes speed up the reactions inside the cytoplasm.",
            "Plant cells have a rigid wall made of cellulose.",
        ),
    ),
    Topic(
        "prison",
        5,
        "life in a prison cell",
        True,
        ("Inspection report of the jail", "Parole board minutes", "Memoir of a warden"),
        (
            "The inmate spent twenty-three hours a day locked in his room.",
            "The parole board reviewed the case after ten years.",
            "Guards search every visitor at the gate.",
            "The warden introduced education classes for the prisoners.",
            "He served a five-year sentence for burglary.",
            "Overcrowding meant three men shared a space meant for one.",
            "Solitary confinement is used as a punishment for violence.",
            "Inmates work in the laundry and the kitchen.",
            "The jail was built in the nineteenth century.",
            "Family visits take place behind glass screens.",
        ),
    ),
    Topic(
        "mobile_network",
        5,
        "poor phone signal in the countryside",
        False,
        ("Network coverage report", "Telecom news", "Complaints about reception"),
        (
            "The new cell tower improved coverage in the valley.",
            "Signal strength drops inside buildings with thick stone walls.",
            "Roaming charges apply when you travel abroad.",
            "5G antennas were installed on the station roof.",
            "Dropped calls were reported along the motorway.",
            "The operator shares masts with its competitors in rural areas.",
            "Data speeds slow down at peak times in the city centre.",
            "A booster can amplify a weak signal at home.",
            "The cell network failed during the storm.",
            "Villagers petitioned for a mast near the school.",
        ),
    ),
    # family 6: bat / cave
    Topic(
        "baseball",
        6,
        "hitting a home run",
        False,
        ("Match report", "Season review", "Batting practice notes"),
        (
            "The batter swung and sent the ball over the outfield wall.",
            "The pitcher threw a fastball at ninety-five miles an hour.",
            "Wooden bats are used in the professional league.",
            "The team won in the ninth inning with a walk-off single.",
            "The catcher signalled for a curveball.",
            "Fans cheered as the runner stole second base.",
            "Batting practice starts two hours before the game.",
            "The umpire called the third strike.",
            "A grand slam cleared the bases.",
            "The shortstop turned a double play.",
        ),
    ),
    Topic(
        "bats",
        6,
        "bats flying out of a cave at dusk",
        True,
        ("Wildlife survey of the colony", "Night walk notes", "Mammal conservation report"),
        (
            "The tiny mammals roost upside down in the roof of the old mine.",
            "Echolocation lets them find moths in complete darkness.",
            "A single pipistrelle can eat three thousand insects in a night.",
            "The colony hibernates in winter when food is scarce.",
            "Surveyors used ultrasonic detectors to count the animals as they emerged.",
            "Fruit-eating species spread seeds through the forest.",
            "White-nose syndrome has killed millions of them in North America.",
            "Their wings are skin stretched between long finger bones.",
            "The roost is protected by law and must not be disturbed.",
            "They leave the church tower at sunset to hunt over the pond.",
        ),
    ),
    Topic(
        "caving",
        6,
        "exploring underground passages with ropes",
        False,
        ("Expedition log", "Caving club newsletter", "Notes from the descent"),
        (
            "We abseiled down the sixty-metre shaft into the cave.",
            "Stalactites hang from the ceiling of the main chamber.",
            "Every caver carries a helmet, a headlamp and spare batteries.",
            "The passage narrowed to a squeeze we crossed on our stomachs.",
            "An underground river flows through the lower galleries.",
            "The cave system was surveyed over three expeditions.",
            "Flooding after heavy rain can trap explorers below ground.",
            "The rope was rigged from bolts at the pitch head.",
            "Limestone dissolves slowly to form the caverns.",
            "We surfaced after eleven hours underground.",
        ),
    ),
    # family 7: crane
    Topic(
        "construction",
        7,
        "building a skyscraper",
        False,
        ("Site diary", "Construction progress report", "Safety briefing"),
        (
            "The tower crane lifted steel beams to the fortieth floor.",
            "Scaffolding wraps the building while the facade goes up.",
            "Concrete was poured for the foundations overnight.",
            "Hard hats and high-visibility vests are mandatory on site.",
            "The crane operator stopped work when the wind became too strong.",
            "Engineers checked the welds on the steel frame.",
            "The foundation piles go forty metres into the clay.",
            "Cranes dominate the skyline of the new business district.",
            "The glass panels were fitted floor by floor.",
            "Site workers start at seven to avoid the afternoon heat.",
        ),
    ),
    Topic(
        "birds",
        7,
        "cranes dancing in the wetland",
        True,
        ("Birdwatching log", "Wetland reserve newsletter", "Migration report"),
        (
            "The tall grey birds migrate south in long V formations.",
            "In spring the pairs perform a courtship display of leaps and bows.",
            "Wading birds feed on frogs and insects in the shallow marsh.",
            "Birdwatchers counted four hundred of them on the reed beds.",
            "Their trumpeting call carries for miles across the fens.",
            "Herons stand motionless at the water's edge.",
            "The marsh was restored to give breeding pairs a safe place to nest.",
            "Storks nest on chimneys in the village.",
            "Binoculars and a field guide are all you need to start.",
            "The flock rested on the lake before flying on to Spain.",
        ),
    ),
    Topic(
        "origami",
        7,
        "folding paper into animals",
        False,
        ("Craft workshop handout", "Paper folding club", "Origami instructions"),
        (
            "Start with a square sheet and fold it diagonally both ways.",
            "The paper crane is the most famous origami model.",
            "Sharp creases make the final shape crisp.",
            "Washi paper is thin but strong enough for complex models.",
            "A thousand folded cranes are a traditional wish for good health.",
            "The frog model jumps when you press its back.",
            "Reverse folds turn a flap inside out to form the head.",
            "Children at the workshop folded boats and hats.",
            "Wet folding lets thick paper hold curved shapes.",
            "Modular origami joins many identical units into a ball.",
        ),
    ),
    # family 8: mercury / jupiter / venus
    Topic(
        "astronomy",
        8,
        "the planets Jupiter and Venus in the night sky",
        False,
        ("Observing log", "Astronomy club bulletin", "Guide to the solar system"),
        (
            "Mercury orbits closest to the sun and has almost no atmosphere.",
            "Venus is the brightest planet in the evening sky.",
            "Through the telescope Jupiter showed four moons in a line.",
            "Saturn's rings were tilted towards us this year.",
            "Mars appears red because of iron oxide dust.",
            "The craters on the moon are clearest near the terminator.",
            "Jupiter's great red spot is a storm larger than the Earth.",
            "A conjunction of Venus and Jupiter drew crowds to the observatory.",
            "Comets grow tails as they approach the sun.",
            "Dark skies away from the city reveal the Milky Way.",
        ),
    ),
    Topic(
        "toxic_metals",
        8,
        "toxic heavy metals in drinking water",
        False,
        ("Water quality report", "Chemistry safety sheet", "Environmental health notes"),
        (
            "Mercury is a liquid metal at room temperature and its vapour is poisonous.",
            "Old pipes can leach lead into tap water.",
            "Cadmium and arsenic were found in the river sediment.",
            "Fish from the lake had high levels of methylmercury.",
            "Broken thermometers must be cleaned up with care.",
            "The factory was fined for dumping chromium into the stream.",
            "Children are most at risk from lead poisoning.",
            "Filters with activated carbon remove some contaminants.",
            "The laboratory measured the samples in parts per billion.",
            "Mining waste released heavy metals into the groundwater.",
        ),
    ),
    Topic(
        "mythology",
        8,
        "Jupiter and Venus in ancient Rome",
        True,
        ("Myths of the ancient world", "Notes on Roman religion", "Temple guide"),
        (
            "The king of the gods ruled from the sky and hurled thunderbolts.",
            "The goddess of love was born from the sea foam.",
            "The messenger of the gods wore winged sandals.",
            "Temples on the Capitoline hill held the statues of the divine triad.",
            "Priests read the will of the gods in the flight of birds.",
            "Mars, the god of war, was the father of Romulus and Remus.",
            "Offerings of wine and grain were left at household shrines.",
            "The Greeks told the same stories about Zeus and Aphrodite.",
            "Emperors were declared divine after their deaths.",
            "Festivals honoured Saturn at the winter solstice.",
        ),
    ),
    # family 9: bass / conductor
    Topic(
        "orchestra",
        9,
        "a symphony concert",
        False,
        ("Concert programme", "Rehearsal notes", "Review of the season opener"),
        (
            "The conductor raised the baton and the orchestra fell silent.",
            "The violins carried the melody in the slow movement.",
            "The double bass player tuned her instrument before the overture.",
            "The choir joined for the final chorus of the symphony.",
            "Brass and timpani thundered in the finale.",
            "The conductor took the tempo faster than the score suggests.",
            "The soloist played the concerto from memory.",
            "Rehearsals ran late the night before the premiere.",
            "The cellos and basses gave the chord its warmth.",
            "The audience gave a standing ovation after the last movement.",
        ),
    ),
    Topic(
        "fishing",
        9,
        "catching bass on the lake",
        True,
        ("Angler's diary", "Tackle shop newsletter", "Notes from the lake"),
        (
            "The fish struck the lure just after dawn near the weed beds.",
            "Soft plastic worms work well in warm shallow water.",
            "We released the trout after weighing it.",
            "A spinning reel with light line is good for beginners.",
            "The pike took the spinner and bent the rod double.",
            "Cast towards fallen trees where predators wait for prey.",
            "Anglers need a permit to fish the reservoir.",
            "The catch of the day was a four-pound perch.",
            "Use barbless hooks if you plan to let them go.",
            "Early mornings in June are the best time on the water.",
        ),
    ),
    Topic(
        "railway",
        9,
        "the conductor checked our train tickets",
        False,
        ("Rail travel diary", "Timetable changes", "Commuter newsletter"),
        (
            "The guard checked tickets between the two stations.",
            "The locomotive pulled twelve carriages up the steep gradient.",
            "Passengers waited on the platform for the delayed service.",
            "The timetable changes in December with more trains at weekends.",
            "A season ticket saves money for daily commuters.",
            "The sleeper train leaves at ten and arrives at seven.",
            "Signal failures caused delays across the network.",
            "The conductor announced that the buffet car was closed.",
            "Electric trains replaced the diesel units on the branch line.",
            "Reserve a seat for long journeys in summer.",
        ),
    ),
)

TUNE_FAMILIES = frozenset(range(5))


@dataclass(frozen=True)
class Document:
    filename: str
    topic: str
    text: str  # Markdown for .md; the page text for .pdf


def documents(seed: int = 17, markdown: int = 300, pdfs: int = 20) -> list[Document]:
    """`markdown` Markdown documents and `pdfs` PDF pages' texts spread evenly over the topics."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(markdown + pdfs):
        topic = TOPICS[i % len(TOPICS)]
        title = topic.titles[int(rng.integers(len(topic.titles)))]
        picked = rng.choice(len(topic.sentences), size=int(rng.integers(4, 7)), replace=False)
        body = " ".join(topic.sentences[int(j)] for j in picked)
        kind = "md" if i < markdown else "pdf"
        text = f"# {title}\n\n{body}\n" if kind == "md" else f"{title}. {body}"
        # Neutral names: a topic word in the filename would hand the answer to whoever indexes names.
        out.append(Document(f"doc_{seed}_{i:03d}.{kind}", topic.name, text))
    return out


def write_documents(folder: Path, docs: list[Document]) -> list[Path]:
    """The documents as files: Markdown as UTF-8 text, PDFs with one text page each."""
    from dataflux_pipelines.samples import pdf_bytes

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for doc in docs:
        path = folder / doc.filename
        if doc.filename.endswith(".pdf"):
            path.write_bytes(pdf_bytes([doc.text]))
        else:
            path.write_text(doc.text, encoding="utf-8")
        paths.append(path)
    return paths


def queries(split: str | None = None) -> list[Topic]:
    """The labelled queries (one per topic), all of them or the `tune` or `held_out` half."""
    if split is None:
        return list(TOPICS)
    if split not in ("tune", "held_out"):
        raise ValueError(f"unknown split {split!r}")
    return [t for t in TOPICS if (t.family in TUNE_FAMILIES) == (split == "tune")]


def precision_at(ranked_topics: list[str | None], topic: str, k: int = 3) -> float:
    """Share of the first k results that belong to the topic; missing results count as wrong."""
    return sum(1 for t in ranked_topics[:k] if t == topic) / k
