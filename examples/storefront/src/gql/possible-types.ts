
      export type PossibleTypesResultData = {
  "possibleTypes": {
    "Block": [
      "BannerBlock",
      "CallToActionBlock",
      "GenericBlock",
      "HeroBlock",
      "ProductGridBlock",
      "RichTextBlock",
      "TestimonialBlock"
    ]
  }
};
      const result: PossibleTypesResultData = {
  "possibleTypes": {
    "Block": [
      "BannerBlock",
      "CallToActionBlock",
      "GenericBlock",
      "HeroBlock",
      "ProductGridBlock",
      "RichTextBlock",
      "TestimonialBlock"
    ]
  }
};
      export default result;
    