# mutant: the wrong answer to the multiple-choice question ("learned features are invariant by construction")
# replaces: answer
# caught-by: test_question
answer = "B"
