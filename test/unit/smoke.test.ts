import { describe, it, expect } from 'vitest';
import { IMAGE_STATES } from '../../src/messages/states.js';
import { imageIn } from '../support/image-states.js';
import { replay } from '../support/image-spec.js';

describe('imageIn', () => {
  it.each(IMAGE_STATES)('reaches %s', (s) => {
    const v = replay(imageIn(s));
    expect(v?.state ?? 'INIT').toBe(s);
  });
});
