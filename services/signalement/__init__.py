"""signalement: intake of life events and partners' referrals; nothing lost, nothing in clear
downstream."""
